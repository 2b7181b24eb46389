"""One Telegram update, start to finish: type it, run the pipeline, answer on the wire.

Webhook and long polling both hand updates here. Replies to the update are sent inline
(paced like the outbox, sharing its budget); whatever cannot be delivered now (429,
network trouble, a blocked member) is handed to the outbox, which retries, waits
``retry_after`` or marks the account unreachable.
"""
from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from collections.abc import Awaitable
from typing import TYPE_CHECKING

from aiogram import Bot
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import TelegramAPIError
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Update, User

from bot.channels.registry import SendError
from bot.channels.telegram.render import Part, render
from bot.channels.telegram.sender import TelegramSender
from bot.channels.telegram.updates import CHANNEL, Unsupported, build_dispatcher
from bot.i18n import normalize_locale
from bot.messages import Incoming, Outgoing, Reply
from bot.outbox import pace

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)


class TelegramChannel:
    def __init__(self, bot: Bot, services: "Services") -> None:
        self.bot = bot
        self.services = services
        self.settings = services.settings
        self.sender = TelegramSender(bot, services.settings, services.limiter)
        self.dispatcher = build_dispatcher()
        self._me: User | None = None
        self._me_lock = asyncio.Lock()
        self._me_retry_at = 0.0
        self._tasks: set[asyncio.Task[None]] = set()

    # --- the bot's own identity (for group mentions) -------------------------------------
    async def me(self) -> User:
        """getMe once; if Telegram cannot be reached, the id from the token and the
        configured username still recognise replies and mentions."""
        if self._me is not None:
            return self._me
        fallback = User(id=self.bot.id, is_bot=True, first_name="bot",
                        username=self.settings.telegram_bot_username or None)
        loop = asyncio.get_running_loop()
        if loop.time() < self._me_retry_at:
            return fallback  # don't stall every update on an unreachable Bot API
        async with self._me_lock:
            if self._me is None:
                try:
                    self._me = await self.bot.get_me()
                except TelegramAPIError as exc:
                    log.warning("telegram getMe failed: %s", exc)
                    self._me_retry_at = loop.time() + 60
                    return fallback
        return self._me

    # --- processing ----------------------------------------------------------------------
    async def accept(self, update: Update) -> None:
        """Record and answer an update before Telegram hears "200"; only sending the
        answers (Bot API calls, paced) happens in the background.

        Raises when the update could not be processed (the database is down, say): the
        webhook then answers 500 and polling keeps its offset, so Telegram delivers the
        update again instead of it being lost. Its dedup claim is released for that retry.
        """
        result = await self.dispatcher.feed_update(self.bot, update, me=await self.me())
        if result is UNHANDLED or result is None:
            return
        key = f"{CHANNEL}:update:{update.update_id}"
        if not await self.services.dedup.claim(key, self.settings.dedup_ttl_seconds):
            return  # redelivered while (or after) we handled it: no second answer
        try:
            if isinstance(result, Unsupported):
                self._spawn(self._unsupported(result))
                return
            incoming: Incoming = result
            callback_id = incoming.meta.get("callback_id")
            # stop the button's spinner at once; the answer follows it
            spinner = asyncio.create_task(self._answer_callback(callback_id)) if callback_id else None
            assert self.services.pipeline is not None
            replies = await self.services.pipeline.process(incoming)
        except BaseException:
            await self.services.dedup.release(key)
            raise
        self._spawn(self._after(spinner, self.deliver(incoming, replies)))

    @staticmethod
    async def _after(first: asyncio.Task[None] | None, then: Awaitable[None]) -> None:
        if first is not None:
            await first
        await then

    def _spawn(self, work: Awaitable[None]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:  # a send that fails for good is already in the outbox
                log.exception("telegram delivery failed")

        task = asyncio.create_task(run())
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def drain(self) -> None:
        """Wait until every answer in flight is sent (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _unsupported(self, result: Unsupported) -> None:
        _ = self.services.translator.bind(result.locale_hint or self.settings.default_locale)
        text = _("I can only read text messages for now. Please type your question.")
        await self._send_parts(result.chat_id, render(Reply(text=text)), reply_to=result.reply_to)

    async def _answer_callback(self, callback_id: str) -> None:
        """Stop the button's spinner first; the answer itself follows."""
        try:
            await self.bot.answer_callback_query(callback_query_id=callback_id)
        except TelegramAPIError as exc:  # too old (> 15 s) or already answered: harmless
            log.info("answerCallbackQuery %s: %s", callback_id, exc)

    # --- answering -------------------------------------------------------------------------
    async def deliver(self, incoming: Incoming, replies: list[Reply]) -> None:
        if incoming.event == "unsubscribe":
            return  # the member blocked the bot: anything sent now would bounce with 403
        chat = incoming.address
        meta = incoming.meta
        reply_to = meta.get("message_id") if meta.get("group") and not meta.get("callback_id") else None
        edit_id = meta.get("message_id") if meta.get("callback_id") and meta.get("editable") else None
        delivered_privately = True
        for i, reply in enumerate(replies):
            parts = render(reply)
            if not parts:
                continue
            if i == 0 and edit_id and reply.choices and len(parts) == 1:
                # the next step of a menu (did-you-mean -> answer): replace it in place
                if await self._edit(chat, edit_id, parts[0]):
                    continue
            ok = await self._send_parts(chat, parts, reply_to=reply_to, member_hint=incoming)
            delivered_privately = delivered_privately and ok
            reply_to = None  # thread only the first answer under the question
        group = meta.get("moved_from_group")
        if group and replies:
            await self._group_note(group, incoming, delivered_privately)

    async def _edit(self, chat: str, message_id: int, part: Part) -> bool:
        await pace(self.services.limiter, self.sender, chat)
        try:
            await self.sender.edit_part(chat, message_id, part)
            return True
        except SendError as err:
            log.info("edit of %s/%s failed (%s); following up instead", chat, message_id, err.reason)
            return False

    async def _send_parts(
        self, chat: str, parts: list[Part], *, reply_to: int | None = None, member_hint: Incoming | None = None,
    ) -> bool:
        """Send now; hand what is left to the outbox when Telegram says "not now"."""
        for i, part in enumerate(parts):
            await pace(self.services.limiter, self.sender, chat)
            try:
                await self.sender.send_part(chat, part, reply_to=reply_to if i == 0 else None)
            except SendError as err:
                if err.ambiguous:
                    log.warning("telegram send to %s may have arrived (%s); not repeated", chat, err.reason)
                    return True
                await self._to_outbox(chat, parts[i:], member_hint, err)
                return False
        return True

    async def _to_outbox(self, chat: str, parts: list[Part], incoming: Incoming | None, err: SendError) -> None:
        """The outbox owns retries, ``retry_after`` and marking blocked members."""
        rest = Reply(text="\n\n".join(p.text for p in parts), kind="reply")
        if parts and parts[-1].markup is not None:
            rest = _with_markup(rest, parts[-1].markup)
        member_id = None
        if incoming is not None:
            from bot.models import ChannelAccount

            account = await ChannelAccount.get_or_none(channel=CHANNEL, external_id=incoming.user)
            member_id = account.member_id if account else None  # type: ignore[attr-defined]
        key = f"{CHANNEL}:{incoming.msg_id}:{chat}:{len(parts)}" if incoming and incoming.msg_id else None
        log.info("telegram send to %s deferred to the outbox: %s", chat, err.reason)
        not_before = datetime.now(timezone.utc) + timedelta(seconds=err.retry_after) if err.retry_after else None
        await self.services.outbox.enqueue(
            Outgoing(channel=CHANNEL, address=chat, reply=rest, member_id=member_id, idempotency_key=key, purpose="reply"),
            not_before=not_before,
        )

    async def _group_note(self, group_chat: str, incoming: Incoming, delivered: bool) -> None:
        """After answering a private matter privately, tell the group where it went."""
        me = await self.me()
        _ = self.services.translator.bind(normalize_locale(incoming.locale_hint) or self.settings.default_locale)
        if delivered:
            text = _("I have sent you the answer in a private chat.")
        else:
            text = _("I can only answer this in a private chat. Please open a chat with me and send the command again.")
        markup = None
        if me.username:
            markup = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(
                text=_("Open a private chat"), url=f"https://t.me/{me.username}")]])
        part = render(Reply(text=text))[0]
        part = Part(text=part.text, html=part.html, markup=markup)
        await pace(self.services.limiter, self.sender, group_chat)
        try:
            await self.sender.send_part(group_chat, part, reply_to=incoming.meta.get("message_id"))
        except SendError as err:
            log.info("group note to %s failed: %s", group_chat, err.reason)


def _with_markup(reply: Reply, markup: InlineKeyboardMarkup) -> Reply:
    """Rebuild the choices and link cards of a rendered keyboard (for the outbox)."""
    from bot.messages import Card, Choice

    for row in markup.inline_keyboard:
        for b in row:
            if b.callback_data:
                reply.choices.append(Choice(label=b.text, action=b.callback_data))
            elif b.url:
                reply.cards.append(Card(title=b.text, url=b.url))
    return reply
