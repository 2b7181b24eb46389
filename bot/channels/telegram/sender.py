"""Sending to Telegram within its limits, with failures told apart for the outbox.

Telegram allows about 30 messages/s over all chats, 1/s to one chat and 20/min to one
group; the outbox (and the webhook's inline replies, through the same
:func:`bot.core.outbox.pace`) keeps to those. What a failure means decides what happens next:
429 waits ``retry_after``; 403 (blocked, kicked) marks the member unreachable; a timeout
after the request went out may have been delivered, so it is not blindly repeated; a
connection that never opened is simply retried.
"""

from __future__ import annotations

import asyncio
import logging

import aiohttp
from aiogram import Bot
from aiogram.enums import ParseMode
from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramEntityTooLarge,
    TelegramForbiddenError,
    TelegramMigrateToChat,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramUnauthorizedError,
)
from aiogram.types import Message, ReplyParameters

from bot.core.channel_registry import SendError, SendResult
from bot.channels.telegram.render import Part, render
from bot.channels.telegram.updates import CHANNEL
from bot.core.messages import Reply
from bot.core.models import OutboxMessage
from bot.core.outbox import pace
from bot.core.settings import Settings
from bot.core.stores import RateLimiter

log = logging.getLogger(__name__)

_UNREACHABLE_400 = ("chat not found", "user not found", "peer_id_invalid", "group chat was deactivated")


def is_group(address: str) -> bool:
    """Telegram group and supergroup ids are negative."""
    return address.startswith("-")


def send_error(exc: TelegramAPIError) -> SendError:
    """What the outbox should do about one failed Bot API call."""
    text = f"{type(exc).__name__}: {exc.message}"
    if isinstance(exc, TelegramRetryAfter):
        return SendError(text, retry_after=float(exc.retry_after))
    if isinstance(exc, TelegramForbiddenError):
        return SendError(text, unreachable=True)
    if isinstance(exc, TelegramUnauthorizedError):
        return SendError(text, hold=True)  # wrong token: nothing can be sent until fixed
    if isinstance(exc, TelegramBadRequest):
        low = exc.message.lower()
        return SendError(text, unreachable=any(s in low for s in _UNREACHABLE_400), permanent=True)
    if isinstance(exc, (TelegramNotFound, TelegramEntityTooLarge)):
        return SendError(text, permanent=True)
    if isinstance(exc, TelegramNetworkError):
        cause = exc.__cause__
        if isinstance(cause, (aiohttp.ClientConnectorError, aiohttp.ConnectionTimeoutError)):
            return SendError(text)  # the request never left: safe to retry
        return SendError(text, ambiguous=True)  # timed out or cut off after it was sent
    return SendError(text)  # 5xx, conflict: retry with backoff


class TelegramSender:
    """The outbox's sender for ``telegram`` and the one place that calls sendMessage."""

    name = CHANNEL

    def __init__(self, bot: Bot, settings: Settings, limiter: RateLimiter) -> None:
        self.bot = bot
        self.limiter = limiter
        self.rate_global: float | None = settings.telegram_rate_global or None
        self.rate_per_chat: float | None = settings.telegram_rate_per_chat or None
        self.rate_per_group: float | None = settings.telegram_rate_per_group or None
        # outbox id -> parts already delivered, so a retry of a split message goes on
        # where it stopped instead of repeating the first parts (in-process only)
        self._progress: dict[int, int] = {}
        # chat -> when we last sent to it (monotonic): the final per-chat guard
        self._last_sent: dict[str, float] = {}

    def rate_for_address(self, address: str) -> float | None:
        return self.rate_per_group if is_group(address) else self.rate_per_chat

    async def _keep_chat_spacing(self, chat_id: str) -> None:
        """The limiter hands out per-chat slots, but two messages to one chat can still
        swap places while waiting for global slots; never let them go closer than the
        chat's interval (in this process)."""
        rate = self.rate_for_address(chat_id)
        if not rate:
            return
        loop = asyncio.get_running_loop()
        last = self._last_sent.get(chat_id)
        if last is not None and (wait := last + 1.0 / rate - loop.time()) > 0:
            await asyncio.sleep(wait)
        now = loop.time()
        self._last_sent[chat_id] = now
        if len(self._last_sent) > 50_000:  # forget chats idle longer than any interval
            horizon = now - 1.0 / min(r for r in (self.rate_per_chat, self.rate_per_group) if r)
            self._last_sent = {k: t for k, t in self._last_sent.items() if t > horizon}

    async def send_part(self, chat_id: str, part: Part, *, reply_to: int | None = None) -> Message:
        """One sendMessage; raises :class:`SendError`."""
        try:
            try:
                return await self._send(chat_id, part, reply_to)
            except TelegramMigrateToChat as exc:  # the group became a supergroup
                return await self._send(str(exc.migrate_to_chat_id), part, reply_to)
        except TelegramAPIError as exc:
            raise send_error(exc) from exc

    async def _send(self, chat_id: str, part: Part, reply_to: int | None) -> Message:
        await self._keep_chat_spacing(chat_id)
        return await self.bot.send_message(
            chat_id=int(chat_id),
            text=part.html,
            parse_mode=ParseMode.HTML,
            reply_markup=part.markup,
            reply_parameters=ReplyParameters(message_id=reply_to, allow_sending_without_reply=True)
            if reply_to
            else None,
        )

    async def edit_part(self, chat_id: str, message_id: int, part: Part) -> None:
        """Replace a message the member pressed a button on; raises :class:`SendError`."""
        await self._keep_chat_spacing(chat_id)
        try:
            await self.bot.edit_message_text(
                chat_id=int(chat_id),
                message_id=message_id,
                text=part.html,
                parse_mode=ParseMode.HTML,
                reply_markup=part.markup,
            )
        except TelegramAPIError as exc:
            raise send_error(exc) from exc

    async def send(self, message: OutboxMessage, reply: Reply, locale: str) -> SendResult:
        """Send a stored message; the outbox has already paced its first part."""
        parts = render(reply)
        if not parts:
            raise SendError("empty reply", permanent=True)
        done = self._progress.get(message.id, 0)
        refs: list[str] = []
        first = True
        for i, part in enumerate(parts[done:], start=done):
            if not first:
                await pace(self.limiter, self, message.address)
            first = False
            sent = await self.send_part(message.address, part)
            refs.append(str(sent.message_id))
            self._progress[message.id] = i + 1
        self._progress.pop(message.id, None)
        return SendResult(provider_ref=",".join(refs)[:128], segments=len(parts))
