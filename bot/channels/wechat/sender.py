"""The outbox's sender for WeChat: customer-service messages (``message/custom/send``).

WeChat only lets an Official Account write to a member for 48 hours after the member's
last message, with a quota. What cannot go out is held with a clear reason, and a copy
goes by SMS when the member has an active SMS account.
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

import aiohttp

from bot.core.channel_registry import SendError, SendResult
from bot.channels.wechat.api import WeChatAPI, WeChatAPIError, send_error
from bot.channels.wechat.inbound import CHANNEL
from bot.channels.wechat.render import custom_message
from bot.core.inbound import ChannelServices
from bot.core.messages import Outgoing, Reply
from bot.core.models import ChannelAccount

if TYPE_CHECKING:
    from bot.core.models import OutboxMessage

SERVICE_WINDOW = timedelta(hours=48)


class WeChatSender:
    name = CHANNEL
    rate_global: float | None = 200.0  # well under WeChat's per-account API frequency limits
    rate_per_chat: float | None = None

    def __init__(self, api: WeChatAPI, services: ChannelServices) -> None:
        self.api = api
        self.services = services

    async def send(self, message: "OutboxMessage", reply: Reply, locale: str) -> SendResult:
        account = await ChannelAccount.get_or_none(channel=CHANNEL, external_id=message.address)
        if account is not None and not account.active:
            raise SendError(
                f"the member's WeChat account is inactive ({account.inactive_reason or 'unsubscribed'})", permanent=True
            )
        last = account.last_inbound_at if account else None
        if last is None or datetime.now(timezone.utc) - last > SERVICE_WINDOW:
            when = last.strftime("%Y-%m-%d %H:%M UTC") if last else "never"
            raise await self._hold(
                message,
                reply,
                f"outside WeChat's 48-hour customer-service window (member last wrote: {when}); "
                "it can be sent after the member writes again",
            )
        payload = custom_message(message.address, reply, self.services.translator.bind(locale))
        try:
            data = await self.api.send_custom(payload)
        except WeChatAPIError as err:
            mapped = send_error(err)
            if mapped.hold:
                raise await self._hold(message, reply, mapped.reason) from err
            raise mapped from err
        except (asyncio.TimeoutError, aiohttp.ServerTimeoutError) as exc:
            raise SendError("WeChat did not answer in time; it may have been delivered", ambiguous=True) from exc
        return SendResult(provider_ref=str(data.get("msgid", "")))

    async def _hold(self, message: "OutboxMessage", reply: Reply, reason: str) -> SendError:
        """A hold error; first queue an SMS copy when the member has an SMS account."""
        if message.member_id:
            sms = await ChannelAccount.filter(member_id=message.member_id, channel="sms", active=True).first()
            if sms is not None:
                key = f"{message.idempotency_key or f'outbox:{message.id}'}:sms"
                copy = await self.services.outbox.enqueue(
                    Outgoing(
                        channel="sms",
                        address=sms.chat_id or sms.external_id,
                        reply=reply,
                        member_id=message.member_id,
                        idempotency_key=key[:191],
                        purpose=message.purpose,
                    ),
                    transcribe=False,
                )
                reason = f"{reason}; sent by SMS instead (outbox #{copy.id})"
        return SendError(reason, hold=True)
