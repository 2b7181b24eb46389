"""One Telegram update, start to finish: type it, run the pipeline, answer on the wire.

Webhook and long polling both hand updates here. Every answer is an outbox row (keyed by
update and position) *before* Telegram hears "200", so a worker killed after that loses
nothing: the outbox sends the row once its inline grace (or its sending lease) is over.
The process that computed the answer claims the rows at once and sends them inline
(paced like the outbox, sharing its budget, with in-place edits and group threading);
whatever cannot be delivered now (429, network trouble, a blocked member) is left to the
outbox, which retries, waits ``retry_after`` or marks the account unreachable. A
redelivered update finds its rows by their keys: nothing is sent twice.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta, timezone
from collections.abc import Awaitable

from aiogram import Bot
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.exceptions import TelegramAPIError
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Update, User

from bot.core.channel_registry import SendError
from bot.channels.telegram.render import Part, render
from bot.channels.telegram.sender import TelegramSender
from bot.channels.telegram.updates import CHANNEL, Unsupported, build_dispatcher, msg_id
from bot.core.i18n import normalize_locale
from bot.core.inbound import ChannelServices
from bot.core.messages import Incoming, Outgoing, Reply
from bot.core.models import OutboxMessage
from bot.core.outbox import claim_row, mark_sent, pace
from bot.core.tasks import Background

log = logging.getLogger(__name__)


class UpdateBusy(Exception):
    """Another live worker holds this update: Telegram should deliver it again later."""


class TelegramChannel:
    def __init__(self, bot: Bot, services: ChannelServices) -> None:
        self.bot = bot
        self.services = services
        self.settings = services.settings
        self.sender = TelegramSender(bot, services.settings, services.limiter)
        self.dispatcher = build_dispatcher()
        self._me: User | None = None
        self._me_lock = asyncio.Lock()
        self._me_retry_at = 0.0
        self._tasks = Background("telegram answers")

    # --- the bot's own identity (for group mentions) -------------------------------------
    async def me(self) -> User:
        """getMe once; if Telegram cannot be reached, the id from the token and the
        configured username still recognise replies and mentions."""
        if self._me is not None:
            return self._me
        fallback = User(
            id=self.bot.id, is_bot=True, first_name="bot", username=self.settings.telegram_bot_username or None
        )
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
        """Record and answer an update, and store its answers, before Telegram hears "200";
        only sending them (Bot API calls, paced) happens in the background.

        Raises when the update could not be processed (the database is down, say, or
        another worker still holds it): the webhook then answers 500 and polling keeps its
        offset, so Telegram delivers the update again instead of it being lost.
        """
        result = await self.dispatcher.feed_update(self.bot, update, me=await self.me())
        if result is UNHANDLED or result is None:
            return
        if isinstance(result, Unsupported):
            _ = self.services.translator.bind(result.locale_hint or self.settings.default_locale)
            note = Reply(text=_("I can only read text messages for now. Please type your question."))
            rows = await self._store(msg_id(update.update_id), result.chat_id, None, [note])
            self._spawn(self._send_rows(result.chat_id, rows, reply_to=result.reply_to))
            return
        incoming: Incoming = result
        callback_id = incoming.meta.get("callback_id")
        # stop the button's spinner at once; the answer follows it
        spinner = asyncio.create_task(self._answer_callback(callback_id)) if callback_id else None
        assert self.services.pipeline is not None
        # a redelivery waits out a dead worker's lease and takes the update over
        handled = await self.services.pipeline.handle(incoming, wait=self.settings.dedup_lease_seconds + 1.0)
        if handled.status == "pending":
            raise UpdateBusy(f"update {update.update_id} is still being processed elsewhere")
        if incoming.event == "unsubscribe":
            return  # the member blocked the bot: anything sent now would bounce with 403
        rows = await self._store(incoming.msg_id, incoming.address, incoming.user, handled.replies)
        self._spawn(self._after(spinner, self.deliver(incoming, rows, first_time=handled.status == "answered")))

    async def _store(
        self,
        msg: str | None,
        chat: str,
        user: str | None,
        replies: list[Reply],
    ) -> list[tuple[Reply, int]]:
        """One outbox row per reply, keyed by message and position: durable before the
        200, and the same rows again for a redelivery."""
        replies = [r for r in replies if render(r)]
        if not replies:
            return []
        member_id: int | None = None
        if user is not None:
            from bot.core.models import ChannelAccount

            member_id = (
                await ChannelAccount.filter(  # type: ignore[assignment]  # tortoise types flat=True as tuples
                    channel=CHANNEL, external_id=user
                )
                .first()
                .values_list("member_id", flat=True)
            )
        not_before = datetime.now(timezone.utc) + timedelta(seconds=self.settings.telegram_inline_grace_seconds)
        rows = []
        for i, reply in enumerate(replies):
            row = await self.services.outbox.enqueue(
                Outgoing(
                    channel=CHANNEL,
                    address=chat,
                    reply=reply,
                    member_id=member_id,
                    purpose="reply",
                    idempotency_key=f"{CHANNEL}:{msg}:{i}" if msg else None,
                ),
                not_before=not_before,
            )
            rows.append((reply, row.id))
        return rows

    @staticmethod
    async def _after(first: asyncio.Task[None] | None, then: Awaitable[None]) -> None:
        if first is not None:
            await first
        await then

    def _spawn(self, work: Awaitable[object]) -> None:
        async def run() -> None:
            try:
                await work
            except Exception:  # a send that fails for good is already in the outbox
                log.exception("telegram delivery failed")

        self._tasks.spawn(run())

    async def drain(self) -> None:
        """Wait until every answer in flight is sent (tests, shutdown)."""
        await self._tasks.wait()

    async def _answer_callback(self, callback_id: str) -> None:
        """Stop the button's spinner first; the answer itself follows."""
        try:
            await self.bot.answer_callback_query(callback_query_id=callback_id)
        except TelegramAPIError as exc:  # too old (> 15 s) or already answered: harmless
            log.info("answerCallbackQuery %s: %s", callback_id, exc)

    # --- answering -------------------------------------------------------------------------
    async def deliver(self, incoming: Incoming, rows: list[tuple[Reply, int]], *, first_time: bool = True) -> None:
        """Send the stored rows inline (those no other process has claimed)."""
        chat = incoming.address
        meta = incoming.meta
        reply_to = meta.get("message_id") if meta.get("group") and not meta.get("callback_id") else None
        edit_id = meta.get("message_id") if meta.get("callback_id") and meta.get("editable") else None
        delivered_privately = await self._send_rows(chat, rows, reply_to=reply_to, edit_id=edit_id)
        group = meta.get("moved_from_group")
        if group and rows and first_time:
            await self._group_note(group, incoming, delivered_privately)

    async def _send_rows(
        self,
        chat: str,
        rows: list[tuple[Reply, int]],
        *,
        reply_to: int | None = None,
        edit_id: int | None = None,
    ) -> bool:
        delivered = True
        for i, (reply, row_id) in enumerate(rows):
            if not await claim_row(row_id, self.settings.outbox_lease_seconds, due_only=False):
                continue  # sent already (a redelivery), or the outbox has it
            parts = render(reply)
            if i == 0 and edit_id and reply.choices and len(parts) == 1:
                # the next step of a menu (did-you-mean -> answer): replace it in place
                if await self._edit(chat, edit_id, parts[0]):
                    await mark_sent(row_id, attempts=1, provider_ref=f"edit:{edit_id}", segments=1)
                    continue
            ok = await self._send_parts(chat, parts, row_id, reply_to=reply_to)
            delivered = delivered and ok
            reply_to = None  # thread only the first answer under the question
        return delivered

    async def _edit(self, chat: str, message_id: int, part: Part) -> bool:
        await pace(self.services.limiter, self.sender, chat)
        try:
            await self.sender.edit_part(chat, message_id, part)
            return True
        except SendError as err:
            log.info("edit of %s/%s failed (%s); following up instead", chat, message_id, err.reason)
            return False

    async def _send_parts(self, chat: str, parts: list[Part], row_id: int, *, reply_to: int | None = None) -> bool:
        """Send a claimed row now; hand what is left of it to the outbox when Telegram says
        "not now". Recorded as sent right after the Bot API accepted it."""
        refs: list[str] = []
        for i, part in enumerate(parts):
            await pace(self.services.limiter, self.sender, chat)
            try:
                sent = await self.sender.send_part(chat, part, reply_to=reply_to if i == 0 else None)
            except SendError as err:
                if err.ambiguous:
                    log.warning("telegram send to %s may have arrived (%s); not repeated", chat, err.reason)
                    await OutboxMessage.filter(id=row_id).update(
                        status="dead",
                        attempts=1,
                        last_error=f"{err.reason} (may have been delivered; not repeated)"[:1000],
                    )
                    return True
                await self._to_outbox(chat, parts[i:], row_id, err)
                return False
            refs.append(str(sent.message_id))
        await mark_sent(row_id, attempts=1, provider_ref=",".join(refs), segments=len(parts))
        return True

    async def _to_outbox(self, chat: str, parts: list[Part], row_id: int, err: SendError) -> None:
        """The outbox owns retries, ``retry_after`` and marking blocked members: the row
        goes back to it with the parts not yet delivered."""
        rest = Reply(text="\n\n".join(p.text for p in parts), kind="reply")
        if parts and parts[-1].markup is not None:
            rest = _with_markup(rest, parts[-1].markup)
        log.info("telegram send to %s deferred to the outbox: %s", chat, err.reason)
        delay = err.retry_after or 0.0
        await OutboxMessage.filter(id=row_id, status="sending").update(
            status="failed",
            payload=rest.to_dict(),
            attempts=1,
            last_error=err.reason[:1000],
            next_attempt_at=datetime.now(timezone.utc) + timedelta(seconds=delay),
        )
        self.services.outbox.wakeup.set()
        for hook in self.services.outbox.on_stored:
            await hook(row_id)

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
            markup = InlineKeyboardMarkup(
                inline_keyboard=[
                    [InlineKeyboardButton(text=_("Open a private chat"), url=f"https://t.me/{me.username}")]
                ]
            )
        part = render(Reply(text=text))[0]
        part = Part(text=part.text, html=part.html, markup=markup)
        await pace(self.services.limiter, self.sender, group_chat)
        try:
            await self.sender.send_part(group_chat, part, reply_to=incoming.meta.get("message_id"))
        except SendError as err:
            log.info("group note to %s failed: %s", group_chat, err.reason)


def _with_markup(reply: Reply, markup: InlineKeyboardMarkup) -> Reply:
    """Rebuild the choices and link cards of a rendered keyboard (for the outbox)."""
    from bot.core.messages import Card, Choice

    for row in markup.inline_keyboard:
        for b in row:
            if b.callback_data:
                reply.choices.append(Choice(label=b.text, action=b.callback_data))
            elif b.url:
                reply.cards.append(Card(title=b.text, url=b.url))
    return reply
