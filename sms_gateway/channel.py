"""The SMS channel: ``POST /sms/inbound`` and ``POST /sms/status`` (Twilio-compatible),
or an SMPP transceiver session, chosen by ``BOT_SMS_PROVIDER``.

Inbound texts become :class:`Incoming` (``channel="sms"``, ``user`` = E.164 number).
Twilio answers go back as TwiML when they fit ``sms_max_segments``, otherwise through
the outbox and the REST API; SMPP answers always go through the outbox.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

import aiohttp
from aiohttp import web

from bot.core.app_keys import PROCESS_ROLE, SERVICES
from bot.core.inbound import ChannelServices
from bot.core.messages import Incoming, Outgoing, Reply
from bot.core.models import ChannelAccount
from bot.core.settings import Settings
from sms_gateway import continuation, phone, receipts
from sms_gateway.bind_lease import BindLease, hold_bind
from sms_gateway.join_buffer import JoinBuffer, MemoryJoinBuffer, RedisJoinBuffer
from sms_gateway.mo_ids import mo_msg_id
from sms_gateway.encoding import EncodingError, Reassembler, count_segments, decode_body, split_udh
from sms_gateway.sender import CHANNEL, SmppProvider, SmsSender, TwilioProvider
from sms_gateway.smpp import DeliverSm, SmppConfig, SmppEsme, parse_receipt
from sms_gateway.twilio import TWIML_MAX_BODY, TwilioClient, twiml, verify_signature

log = logging.getLogger(__name__)

MAX_BODY_CHARS = 1600  # the longest inbound SMS a provider hands over


@dataclass
class SmsRuntime:
    """What the SMS channel keeps per process (``app[SMS_RUNTIME]``)."""

    settings: Settings
    sender: SmsSender | None = None
    esme: SmppEsme | None = None
    http: aiohttp.ClientSession | None = None
    reassembler: Reassembler = field(default_factory=Reassembler)
    join: JoinBuffer | None = None  # multi-part texts: Redis in production, else the reassembler
    bind_task: asyncio.Task[None] | None = None  # holds the SMPP bind lease (production)

    def joiner(self) -> JoinBuffer:
        if self.join is None:
            self.join = MemoryJoinBuffer(self.reassembler)
        return self.join


SMS_RUNTIME: "web.AppKey[SmsRuntime]" = web.AppKey("sms_runtime")


def _public_url(request: web.Request, settings: Settings) -> str:
    """The URL the provider signed: BOT_PUBLIC_URL + path behind a proxy, else the request's."""
    if settings.public_url:
        return settings.public_url.rstrip("/") + request.path_qs
    return str(request.url)


def _xml(text: str, status: int = 200) -> web.Response:
    return web.Response(text=text, status=status, content_type="text/xml", charset="utf-8")


async def _verified_form(request: web.Request, settings: Settings) -> dict[str, str]:
    """The form fields, once ``X-Twilio-Signature`` checks out; 403 otherwise."""
    if settings.sms_provider == "none":
        raise web.HTTPServiceUnavailable(text="SMS is not configured (BOT_SMS_PROVIDER=none).")
    if settings.sms_provider != "twilio":
        raise web.HTTPNotFound(text=f"SMS webhooks are not used with BOT_SMS_PROVIDER={settings.sms_provider}.")
    if request.content_type != "application/x-www-form-urlencoded":
        raise web.HTTPBadRequest(text="expected an application/x-www-form-urlencoded form post")
    try:
        form = await request.post()
    except ValueError as exc:
        raise web.HTTPBadRequest(text="malformed form body") from exc
    pairs = [(k, v) for k, v in form.items() if isinstance(v, str)]
    if len(pairs) != len(form):
        raise web.HTTPBadRequest(text="file fields are not accepted")
    given = request.headers.get("X-Twilio-Signature", "")
    if not verify_signature(settings.sms_auth_token, _public_url(request, settings), pairs, given):
        log.warning("refused %s with a missing or forged X-Twilio-Signature", request.path)
        raise web.HTTPForbidden(text="invalid X-Twilio-Signature")
    return dict(pairs)


async def inbound(request: web.Request) -> web.Response:
    """A member's text, as posted by the provider."""
    services: ChannelServices = request.app[SERVICES]
    settings = services.settings
    form = await _verified_form(request, settings)
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    if not sid:
        raise web.HTTPBadRequest(text="MessageSid is required")
    try:
        user = phone.normalize(form.get("From", ""), settings.sms_default_region)
    except phone.InvalidPhoneNumber as exc:
        raise web.HTTPBadRequest(text=f"From: {exc}") from exc
    body = form.get("Body", "")[:MAX_BODY_CHARS].strip()
    incoming = Incoming(channel=CHANNEL, user=user, text=body, msg_id=sid[:64])
    replies = await services.pipeline.process(incoming)
    return _xml(twiml(await answer(services, incoming, replies, key=sid)))


async def answer(services: ChannelServices, incoming: Incoming, replies: list[Reply], *, key: str | None) -> list[str]:
    """Texts to answer inline; what does not fit goes through the outbox (and [] returns)."""
    settings = services.settings
    locale = incoming.meta.get("locale") or settings.default_locale
    _ = services.translator.bind(locale)
    texts = [t for t in (continuation.render(r, _) for r in replies) if t.strip()]
    fits = sum(count_segments(t) for t in texts) <= settings.sms_max_segments and all(
        len(t) <= TWIML_MAX_BODY for t in texts
    )
    if key is not None and fits and settings.sms_provider == "twilio":
        return texts
    member_id = await _member_id(incoming)
    for i, reply in enumerate(r for r in replies if continuation.render(r, _).strip()):
        await services.outbox.enqueue(
            Outgoing(
                channel=CHANNEL,
                address=incoming.user,
                reply=reply,
                member_id=member_id,
                purpose="reply",
                idempotency_key=f"sms:{key}:{i}" if key else None,
            ),
            transcribe=False,
        )
    return []


async def _member_id(incoming: Incoming) -> int | None:
    acc = await ChannelAccount.get_or_none(channel=CHANNEL, external_id=incoming.user)
    return acc.member_id if acc else None  # type: ignore[attr-defined]


async def status(request: web.Request) -> web.Response:
    """Delivery receipt (Twilio StatusCallback): updates the outbox message's delivery status."""
    services: ChannelServices = request.app[SERVICES]
    form = await _verified_form(request, services.settings)
    sid = form.get("MessageSid") or form.get("SmsSid") or ""
    state = form.get("MessageStatus") or form.get("SmsStatus") or ""
    if not sid or not state:
        raise web.HTTPBadRequest(text="MessageSid and MessageStatus are required")
    error = " ".join(x for x in (form.get("ErrorCode", ""), form.get("ErrorMessage", "")) if x)
    await receipts.apply_message_receipt(sid[:128], state, error)
    return web.Response(status=204)


# --- SMPP inbound ----------------------------------------------------------------------------
async def handle_deliver_sm(services: ChannelServices, runtime: SmsRuntime, pdu: DeliverSm) -> None:
    """A deliver_sm: a delivery receipt, or (a part of) a member's text.

    The ESME acknowledges the deliver_sm only after this returns (ESME_ROK) and answers
    ESME_RX_T_APPN if it raises, so a failure to store is left to the SMSC to redeliver;
    bad input (unknown number, undecodable text) returns normally: a retry cannot help.
    A part that is only buffered for reassembly counts as handled, so a crash before
    the last part arrives loses the buffered parts of that concatenated text.
    """
    settings = services.settings
    if pdu.is_receipt:
        receipt = parse_receipt(pdu)
        if receipt is None:
            log.warning("unparseable delivery receipt from %s", pdu.source_addr)
            return
        await receipts.apply_part_receipt(receipt.message_id, receipt.status, receipt.error)
        return
    try:
        user = phone.from_smpp(pdu.source_addr, pdu.source_ton, settings.sms_default_region)
    except phone.InvalidPhoneNumber as exc:
        log.warning("deliver_sm from an invalid number dropped: %s", exc)
        return
    try:
        if pdu.has_udh:
            concat, body = split_udh(pdu.short_message)
            if concat is not None and concat.total > 1:
                text = await runtime.joiner().add(user, concat, body, pdu.data_coding)
                if text is None:
                    return  # wait for the other parts
            else:
                text = decode_body(body, pdu.data_coding)
        else:
            text = decode_body(pdu.short_message, pdu.data_coding)
    except EncodingError as exc:
        log.warning("deliver_sm from %s not decodable: %s", user, exc)
        return
    text = text[:MAX_BODY_CHARS].strip()
    # a redelivered text gets the id it had: answered once, its outbox rows found by key
    msg_id = await mo_msg_id(services, user, text, pdu.receipted_message_id)
    incoming = Incoming(channel=CHANNEL, user=user, text=text, msg_id=msg_id)
    replies = await services.pipeline.process(incoming)
    await answer(services, incoming, replies, key=msg_id)


# --- wiring --------------------------------------------------------------------------------
def smpp_config(settings: Settings) -> SmppConfig:
    return SmppConfig(
        host=settings.smpp_host,
        port=settings.smpp_port,
        system_id=settings.smpp_system_id,
        password=settings.smpp_password,
        source_addr=phone.to_smpp(settings.sms_from) if settings.sms_from.startswith("+") else settings.sms_from,
        rate=settings.sms_rate_per_second,
    )


async def _start_smpp(
    app: web.Application, services: ChannelServices, runtime: SmsRuntime, settings: Settings
) -> SmppProvider:
    """The SMPP session: bound at once in the embedded mode; with Redis, by the one sending
    process that holds the account's bind lease (web workers never bind)."""

    async def on_deliver(pdu: DeliverSm) -> None:
        await handle_deliver_sm(services, runtime, pdu)

    runtime.esme = SmppEsme(smpp_config(settings), on_deliver=on_deliver)
    provider = SmppProvider(runtime.esme)
    redis = services.redis
    if redis is None:
        await runtime.esme.start()  # binds in the background; the service starts anyway
        return provider
    runtime.join = RedisJoinBuffer(redis)
    if app.get(PROCESS_ROLE, "both") == "web":
        return provider  # sends happen in the queue worker; MO arrives on its session

    async def bind() -> None:
        esme = SmppEsme(smpp_config(settings), on_deliver=on_deliver)
        runtime.esme = provider.esme = esme
        await esme.start()

    async def unbind() -> None:
        if runtime.esme is not None:
            await runtime.esme.stop()

    lease = BindLease(redis, settings.smpp_system_id or "default", settings.smpp_bind_lease_seconds)
    runtime.bind_task = asyncio.create_task(hold_bind(lease, bind, unbind), name="smpp-bind-lease")
    return provider


def setup(app: web.Application, settings: Settings) -> None:
    app.router.add_post("/sms/inbound", inbound)
    app.router.add_post("/sms/status", status)
    if settings.sms_provider == "none":
        return  # the routes answer 503; no sender is registered

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        services: ChannelServices = app[SERVICES]
        runtime = SmsRuntime(settings)
        if settings.sms_provider == "twilio":
            runtime.http = aiohttp.ClientSession()
            callback = f"{settings.public_url.rstrip('/')}/sms/status" if settings.public_url else ""
            client = TwilioClient(
                runtime.http,
                api_base=settings.sms_api_base,
                account_sid=settings.sms_account_sid,
                auth_token=settings.sms_auth_token,
                sender=settings.sms_from,
                status_callback=callback,
            )
            provider: TwilioProvider | SmppProvider = TwilioProvider(client)
        else:
            provider = await _start_smpp(app, services, runtime, settings)
        runtime.sender = SmsSender(settings, services.translator, provider)
        services.channels.register(runtime.sender)
        app[SMS_RUNTIME] = runtime
        try:
            yield
        finally:
            if runtime.bind_task is not None:
                runtime.bind_task.cancel()  # unbinds and releases the lease
                await asyncio.gather(runtime.bind_task, return_exceptions=True)
            elif runtime.esme:
                await runtime.esme.stop()
            if runtime.http:
                await runtime.http.close()

    app.cleanup_ctx.append(ctx)
