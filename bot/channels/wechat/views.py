"""``GET/POST /wechat``: URL verification and the message callback (plain, compatible, safe).

Every request is authenticated before its body is looked at; a message is answered
passively when the pipeline is done within the deadline, otherwise ``success`` goes back
at once and the answer follows through the outbox (customer-service messages).
"""

from __future__ import annotations

import asyncio
import logging

from aiohttp import web
from multidict import MultiMapping
from wechatpy.crypto import WeChatCrypto
from wechatpy.exceptions import InvalidAppIdException, InvalidSignatureException

from bot.core.app_keys import SERVICES
from bot.channels.wechat import signature
from bot.channels.wechat.inbound import CHANNEL, BadMessage, Inbound, to_inbound
from bot.channels.wechat.render import MAX_ARTICLES_EVENT, MAX_ARTICLES_MESSAGE, passive_xml, text_xml
from bot.channels.wechat.xmlparse import MAX_XML_BYTES, XmlError, XmlTooLarge, parse_xml
from bot.core.i18n import N_, detect_locale
from bot.core.inbound import ChannelServices, Handled
from bot.core.messages import Outgoing, Reply
from bot.core.metrics import SECURITY_REFUSALS
from bot.core.models import ChannelAccount
from bot.core.settings import Settings
from bot.core.tasks import Background

log = logging.getLogger(__name__)

SUCCESS = "success"  # WeChat: received, no passive reply (nothing is shown, no retry)
MEDIA_NAMES = {
    "image": N_("pictures"),
    "voice": N_("voice messages"),
    "video": N_("videos"),
    "shortvideo": N_("videos"),
    "location": N_("locations"),
    "link": N_("links"),
    "file": N_("files"),
}


def _plain(status: int, text: str) -> web.Response:
    return web.Response(status=status, text=text, content_type="text/plain")


class WeChatEndpoint:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.token = settings.wechat_token
        self.crypto = (
            WeChatCrypto(settings.wechat_token, settings.wechat_aes_key, settings.wechat_appid)
            if settings.wechat_token and settings.wechat_aes_key
            else None
        )
        self.background = Background("wechat late answers")

    # --- authentication -----------------------------------------------------------------
    def _authenticate(self, query: MultiMapping[str]) -> None:
        """403 unless ``signature`` is WeChat's and ``timestamp`` is fresh."""
        if not self.token:
            raise web.HTTPServiceUnavailable(text="WeChat channel is not configured (BOT_WECHAT_TOKEN)")
        ts, nonce = query.get("timestamp", ""), query.get("nonce", "")
        if not signature.verify(query.get("signature"), self.token, ts, nonce):
            raise web.HTTPForbidden(text="invalid signature")
        if not signature.fresh(ts, self.settings.wechat_timestamp_window_seconds):
            raise web.HTTPForbidden(text="timestamp outside the allowed window")

    async def verify_url(self, request: web.Request) -> web.Response:
        """WeChat's server-URL check: echo ``echostr`` when the signature is right."""
        self._authenticate(request.query)
        return _plain(200, request.query.get("echostr", ""))

    # --- callback ------------------------------------------------------------------------------
    async def receive(self, request: web.Request) -> web.Response:
        started = asyncio.get_running_loop().time()
        query = request.query
        self._authenticate(query)
        encrypted = query.get("encrypt_type", "raw").lower() == "aes"
        if self.crypto is not None and not encrypted:
            # safe mode configured: a plaintext callback is a downgrade (its signature does not
            # cover the body), whatever it says
            SECURITY_REFUSALS.labels("wechat_plaintext").inc()
            raise web.HTTPForbidden(text="this account is in safe mode: encrypt_type=aes and msg_signature required")
        if request.content_length is not None and request.content_length > MAX_XML_BYTES:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_XML_BYTES, actual_size=request.content_length)
        body = await request.read()
        services: ChannelServices = request.app[SERVICES]
        try:
            envelope = parse_xml(body)
            msg = self._decrypt(envelope, query) if encrypted else envelope
            await self._first_use(services, query)
            inbound = to_inbound(msg)
        except XmlTooLarge:
            raise web.HTTPRequestEntityTooLarge(max_size=MAX_XML_BYTES, actual_size=len(body)) from None
        except (XmlError, BadMessage) as exc:
            return _plain(400, f"bad request: {exc}")
        if inbound.media:
            xml: str | None = await self._media_reply(services, inbound)
        elif inbound.incoming is None:
            return _plain(200, SUCCESS)
        else:
            xml = await self._answer(services, inbound, started)
        if xml is None:
            return _plain(200, SUCCESS)
        if encrypted and self.crypto is not None:
            xml = self.crypto.encrypt_message(xml, query.get("nonce", ""), query.get("timestamp"))
        return web.Response(text=xml, content_type="application/xml")

    async def _first_use(self, services: ChannelServices, query: MultiMapping[str]) -> None:
        """403 for a (timestamp, nonce) already seen: a captured callback cannot be posted again.

        Remembered for twice the timestamp window (a timestamp is accepted that far either
        side of our clock), in Redis when the service has it so every worker agrees. WeChat's
        own retries come with a new nonce and are deduplicated by message id instead."""
        window = self.settings.wechat_timestamp_window_seconds
        key = f"wechat:{query.get('timestamp', '')}:{query.get('nonce', '')}"
        if not await services.nonces.first_use(key, 2 * window + 1):
            SECURITY_REFUSALS.labels("wechat_replay").inc()
            raise web.HTTPForbidden(text="replayed request (timestamp and nonce already used)")

    def _decrypt(self, envelope: dict[str, str], query: MultiMapping[str]) -> dict[str, str]:
        """Safe/compatible mode: check ``msg_signature`` over the ciphertext, then decrypt."""
        if self.crypto is None:
            raise web.HTTPBadRequest(text="safe mode is not configured here (BOT_WECHAT_AES_KEY)")
        encrypt = envelope.get("Encrypt", "")
        ts, nonce = query.get("timestamp", ""), query.get("nonce", "")
        if not encrypt:
            raise XmlError("Encrypt is missing")
        if not signature.verify(query.get("msg_signature"), self.token, ts, nonce, encrypt):
            raise web.HTTPForbidden(text="invalid msg_signature")
        try:
            plain = self.crypto.decrypt_message({"Encrypt": encrypt}, query["msg_signature"], ts, nonce)
        except (InvalidAppIdException, InvalidSignatureException):
            raise web.HTTPForbidden(text="message is not for this Official Account") from None
        except Exception as exc:  # bad base64, padding, length: a forged or truncated ciphertext
            raise XmlError(f"cannot decrypt: {type(exc).__name__}") from exc
        return parse_xml(plain.encode("utf-8"))

    async def _answer(self, services: ChannelServices, inbound: Inbound, started: float) -> str | None:
        """Run the pipeline; passive reply within the deadline, else the outbox later.

        The work is never cancelled: when the deadline passes (or WeChat hangs up) it goes
        on, and its replies are queued as customer-service messages. One answer per MsgId:
        a retry that gets the stored answer replies passively only if no customer-service
        message holds that answer's key (see ``Outbox.answered_inline``).
        """
        incoming = inbound.incoming
        assert incoming is not None and services.pipeline is not None
        work = asyncio.create_task(services.pipeline.handle(incoming))
        elapsed = asyncio.get_running_loop().time() - started
        try:
            remaining = max(self.settings.wechat_reply_deadline_seconds - elapsed, 0.0)
            done, _ = await asyncio.wait({work}, timeout=remaining)
        except asyncio.CancelledError:
            self._spawn(self._deliver_late(services, inbound, work))
            raise
        if work not in done:
            self._spawn(self._deliver_late(services, inbound, work))
            return None
        handled = work.result()
        replies = handled.replies
        if not replies:
            return None  # nothing to say, or a live worker still has it and will queue it
        if len(replies) > 1:  # one passive message per callback: the rest as service messages
            self._spawn(self._enqueue(services, inbound, replies, start=1))
        first = replies[0]
        if (
            handled.status == "repeat"
            and incoming.msg_id
            and not await services.outbox.answered_inline(
                Outgoing(
                    channel=CHANNEL,
                    address=inbound.from_user,
                    reply=first,
                    member_id=None,
                    idempotency_key=f"wechat:{incoming.msg_id}:0",
                    purpose="reply",
                )
            )
        ):
            return None  # the first callback went late: its service message carries the answer
        locale = incoming.meta.get("locale") or detect_locale(first.text, self.settings.default_locale)
        return passive_xml(
            first,
            to_user=inbound.from_user,
            from_user=inbound.to_user,
            _=services.translator.bind(locale),
            max_articles=MAX_ARTICLES_EVENT if inbound.is_event else MAX_ARTICLES_MESSAGE,
        )

    def _spawn(self, coro) -> None:  # type: ignore[no-untyped-def]
        self.background.spawn(self._logged(coro))

    @staticmethod
    async def _logged(coro) -> None:  # type: ignore[no-untyped-def]
        try:
            await coro
        except Exception:
            log.exception("queueing a WeChat answer failed")

    async def _deliver_late(self, services: ChannelServices, inbound: Inbound, work: "asyncio.Task[Handled]") -> None:
        try:
            replies = (await work).replies
        except Exception:
            log.exception("late WeChat answer failed for %s", inbound.incoming and inbound.incoming.dedup_key)
            return
        await self._enqueue(services, inbound, replies, start=0)

    async def _enqueue(self, services: ChannelServices, inbound: Inbound, replies: list[Reply], *, start: int) -> None:
        """Queue replies as customer-service messages, once per message id and position."""
        incoming = inbound.incoming
        assert incoming is not None
        if start >= len(replies):
            return
        member_id: int | None = (
            await ChannelAccount.filter(  # type: ignore[assignment]  # tortoise types flat=True as tuples
                channel=CHANNEL, external_id=inbound.from_user
            )
            .first()
            .values_list("member_id", flat=True)
        )
        for i, reply in enumerate(replies[start:], start):
            key = f"wechat:{incoming.msg_id}:{i}" if incoming.msg_id else None
            await services.outbox.enqueue(
                Outgoing(
                    channel=CHANNEL,
                    address=inbound.from_user,
                    reply=reply,
                    member_id=member_id,
                    idempotency_key=key,
                    purpose="reply",
                )
            )

    async def _media_reply(self, services: ChannelServices, inbound: Inbound) -> str:
        """What we say to a picture, voice note, location …: we read text, and what we can do."""
        locale: str = (
            await ChannelAccount.filter(  # type: ignore[assignment]  # tortoise types flat=True as tuples
                channel=CHANNEL, external_id=inbound.from_user
            )
            .first()
            .values_list("member__locale", flat=True)
            or self.settings.default_locale
        )
        _ = services.translator.bind(locale)
        kind = _(MEDIA_NAMES.get(inbound.media or "", N_("files")))
        text = "\n".join(
            [
                _("Thanks! I can only read text messages, so I cannot look at %(kind)s yet.", kind=kind),
                _(
                    "Here is what I can do: type your question (for example: how do I check my data balance), "
                    "send a business code such as CXLL, send 帮助 for help, or 人工 to talk to a person."
                ),
            ]
        )
        return text_xml(inbound.from_user, inbound.to_user, text)

    async def close(self) -> None:
        """Let late answers finish queueing before the database closes."""
        if self.background:
            await asyncio.wait(set(self.background), timeout=10)  # bounded: a stuck send must not hold shutdown
