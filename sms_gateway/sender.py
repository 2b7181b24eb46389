"""The "sms" ChannelSender: renders a Reply, checks the number, sends via the provider."""

from __future__ import annotations

import logging
from typing import Protocol

from bot.core.channel_registry import SendError, SendResult
from bot.core.i18n import Gettext, Translator
from bot.core.messages import Reply
from bot.core.models import OutboxMessage
from bot.core.settings import Settings
from sms_gateway import phone
from sms_gateway.continuation import fit, render, shorten_text
from sms_gateway.encoding import count_segments, segment
from sms_gateway.models import SmsPart
from sms_gateway.smpp import SmppError, SmppEsme
from sms_gateway.twilio import TwilioClient

log = logging.getLogger(__name__)
CHANNEL = "sms"


class SmsProvider(Protocol):
    name: str

    async def send(self, message: OutboxMessage, to: str, text: str) -> SendResult: ...


class TwilioProvider:
    name = "twilio"

    def __init__(self, client: TwilioClient) -> None:
        self.client = client

    async def send(self, message: OutboxMessage, to: str, text: str) -> SendResult:
        sent = await self.client.send(to, text)
        return SendResult(provider_ref=sent.sid, segments=sent.num_segments or count_segments(text))


class SmppProvider:
    name = "smpp"

    def __init__(self, esme: SmppEsme) -> None:
        self.esme = esme

    async def send(self, message: OutboxMessage, to: str, text: str) -> SendResult:
        segments = segment(text, ref=message.id)
        ids: list[str] = []
        for n, seg in enumerate(segments, 1):
            try:
                mid = await self.esme.submit_part(phone.to_smpp(to), seg)
            except SmppError as exc:
                if ids or exc.written:
                    # part of it (or maybe all of it) is out: repeating would duplicate
                    raise SendError(f"{exc} after {len(ids)} of {len(segments)} parts", ambiguous=True) from exc
                raise SendError(str(exc), permanent=exc.permanent) from exc
            ids.append(mid)
            await SmsPart.create(outbox_id=message.id, message_id=mid[:96], part=n, total=len(segments))
        return SendResult(provider_ref=ids[0], segments=len(segments))


class SmsSender:
    """Outbox sender for the "sms" channel, whichever provider is configured."""

    name = CHANNEL

    def __init__(self, settings: Settings, translator: Translator, provider: SmsProvider) -> None:
        self.settings = settings
        self.translator = translator
        self.provider = provider
        self.rate_global: float | None = settings.sms_rate_per_second or None
        self.rate_per_chat: float | None = None

    def fit(self, reply: Reply, _: Gettext) -> tuple[Reply, Reply | None]:
        """Pipeline answers paged to ``sms_max_segments`` (:class:`bot.core.inbound.PagedChannel`):
        the page that fits, with a "show the full text" choice, and the rest."""
        return fit(reply, _, max(1, self.settings.sms_max_segments))

    def text_for(self, reply: Reply, locale: str) -> str:
        """Rendered for SMS; cut to sms_max_segments (pipeline answers already fit)."""
        return shorten_text(render(reply, self.translator.bind(locale)), self.settings.sms_max_segments)

    async def send(self, message: OutboxMessage, reply: Reply, locale: str) -> SendResult:
        try:
            to = phone.normalize(message.address, self.settings.sms_default_region)
        except phone.InvalidPhoneNumber as exc:
            raise SendError(f"invalid phone number: {exc}", permanent=True) from exc
        text = self.text_for(reply, locale)
        if not text.strip():
            raise SendError("empty message", permanent=True)
        return await self.provider.send(message, to, text)
