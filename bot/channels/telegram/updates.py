"""Telegram ``Update`` -> :class:`~bot.core.messages.Incoming`, typed by an aiogram Dispatcher.

aiogram's routers and filters pick the update kind (message, edited message, button
press, the member blocking the bot) and whether a group message is addressed to the
bot; the handlers here only translate. The domain work happens in the pipeline.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from aiogram import Dispatcher, F, Router
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.filters import KICKED, ChatMemberUpdatedFilter, Filter
from aiogram.types import CallbackQuery, ChatMemberUpdated, Message, MessageEntity, Update, User

from bot.core.i18n import normalize_locale
from bot.channels.telegram.commands import command_text, is_private_command, parse_command
from bot.core.messages import MAX_TEXT, Incoming

CHANNEL = "telegram"
GROUP_TYPES = {"group", "supergroup"}
ALLOWED_UPDATES = ["message", "edited_message", "callback_query", "my_chat_member"]
# callback_data is at most 64 bytes; longer actions go as "#<n>", the n-th pending choice
CALLBACK_INDEX_PREFIX = "#"


@dataclass(slots=True)
class Unsupported:
    """A private message the bot cannot read (sticker, photo without caption …)."""

    chat_id: str
    locale_hint: str | None
    reply_to: int


def msg_id(update_id: int) -> str:
    """Telegram redelivers the same update_id; the pipeline dedups on it."""
    return f"u{update_id}"


def _entity_text(text: str, entity: MessageEntity) -> str:
    # entity offsets count UTF-16 code units
    raw = text.encode("utf-16-le")
    return raw[entity.offset * 2 : (entity.offset + entity.length) * 2].decode("utf-16-le", errors="replace")


def mentions_bot(message: Message, me: User) -> bool:
    """A group message is for the bot when it @mentions it, replies to it, or is /cmd@bot."""
    if message.reply_to_message and message.reply_to_message.from_user:
        if message.reply_to_message.from_user.id == me.id:
            return True
    text = message.text or message.caption or ""
    entities = message.entities or message.caption_entities or []
    username = (me.username or "").lower()
    for e in entities:
        if e.type == "text_mention" and e.user and e.user.id == me.id:
            return True
        if e.type == "mention" and username and _entity_text(text, e).lower() == f"@{username}":
            return True
    cmd = parse_command(text)
    return bool(cmd and cmd.addressed_to and username and cmd.addressed_to.lower() == username)


def strip_mention(text: str, me: User) -> str:
    """The question without the "@bot" that addressed it."""
    if me.username:
        text = re.sub(rf"@{re.escape(me.username)}\b", " ", text, flags=re.IGNORECASE)
    return re.sub(r"[ \t]{2,}", " ", text).strip()


class AddressedToBot(Filter):
    """aiogram filter: private chats always; groups only when the bot is addressed."""

    async def __call__(self, message: Message, me: User) -> bool:
        if message.chat.type == "private":
            return True
        return message.chat.type in GROUP_TYPES and mentions_bot(message, me)


def message_incoming(
    message: Message, update_id: int, me: User, *, edited: bool = False
) -> Incoming | Unsupported | None:
    """A text message (or caption) in a private chat, or addressed to the bot in a group."""
    user = message.from_user
    if user is None or user.is_bot:
        return None
    group = message.chat.type in GROUP_TYPES
    hint = normalize_locale(user.language_code)
    raw = message.text or message.caption
    if raw is None:
        if group:
            return None
        return Unsupported(str(message.chat.id), hint, message.message_id)
    text = strip_mention(raw, me) if group else raw.strip()
    meta: dict[str, Any] = {"message_id": message.message_id, "chat_type": message.chat.type}
    if group:
        meta["group"] = True
    if edited:
        meta["edited"] = True
    base = dict(
        channel=CHANNEL,
        user=str(user.id),
        msg_id=msg_id(update_id),
        chat=str(message.chat.id),
        display_name=user.full_name,
        locale_hint=hint,
        meta=meta,
    )
    cmd = parse_command(text)
    if cmd is not None and cmd.addressed_to and me.username and cmd.addressed_to.lower() != me.username.lower():
        return None  # /cmd@another_bot
    if cmd is not None and cmd.name == "start":
        return Incoming(event="start", payload=cmd.args.split()[0][:128] if cmd.args else None, **base)
    if cmd is not None:
        if group and is_private_command(cmd):
            # points, badges, redemption: not in front of the group
            meta["moved_from_group"] = str(message.chat.id)
            meta.pop("group", None)
            base["chat"] = str(user.id)
        text = command_text(cmd)
    if not text:
        return None
    return Incoming(text=text[:MAX_TEXT], **base)


def callback_incoming(query: CallbackQuery, update_id: int) -> Incoming | None:
    """A button press: its ``action`` (or the n-th pending choice) for the pipeline."""
    user = query.from_user
    data = query.data or ""
    message = query.message
    chat = str(message.chat.id) if message is not None else str(user.id)
    meta: dict[str, Any] = {"callback_id": query.id}
    if message is not None:
        meta["message_id"] = message.message_id
        meta["chat_type"] = message.chat.type
        # a message older than 48 h comes as InaccessibleMessage (date 0): cannot be edited
        meta["editable"] = bool(getattr(message, "date", None)) and bool(getattr(message, "text", None))
        if message.chat.type in GROUP_TYPES:
            meta["group"] = True
    base = dict(
        channel=CHANNEL,
        user=str(user.id),
        msg_id=msg_id(update_id),
        chat=chat,
        display_name=user.full_name,
        locale_hint=normalize_locale(user.language_code),
        meta=meta,
    )
    if data.startswith(CALLBACK_INDEX_PREFIX) and data[1:].isdigit():
        return Incoming(text=str(int(data[1:]) + 1), **base)
    if not data:
        return None
    return Incoming(action=data[:128], **base)


def member_incoming(event: ChatMemberUpdated, update_id: int) -> Incoming:
    """The member blocked the bot (private chat, new status ``kicked``)."""
    return Incoming(
        channel=CHANNEL,
        user=str(event.from_user.id),
        event="unsubscribe",
        msg_id=msg_id(update_id),
        chat=str(event.chat.id),
        display_name=event.from_user.full_name,
        meta={"chat_type": event.chat.type},
    )


def build_dispatcher() -> Dispatcher:
    """An aiogram Dispatcher whose handlers return what the update means to us."""
    router = Router(name="everycsr")

    @router.message(AddressedToBot())
    async def on_message(message: Message, event_update: Update, me: User) -> Any:
        return message_incoming(message, event_update.update_id, me) or UNHANDLED

    @router.edited_message(AddressedToBot(), F.text | F.caption)
    async def on_edited(message: Message, event_update: Update, me: User) -> Any:
        return message_incoming(message, event_update.update_id, me, edited=True) or UNHANDLED

    @router.callback_query(F.data)
    async def on_callback(query: CallbackQuery, event_update: Update) -> Any:
        return callback_incoming(query, event_update.update_id) or UNHANDLED

    @router.my_chat_member(ChatMemberUpdatedFilter(member_status_changed=KICKED), F.chat.type == "private")
    async def on_blocked(event: ChatMemberUpdated, event_update: Update) -> Any:
        return member_incoming(event, event_update.update_id)

    dp = Dispatcher(name="everycsr-telegram")
    dp.include_router(router)
    return dp


def parse_update(data: Any, bot: Any = None) -> Update:
    """Validate raw JSON as an ``Update`` (raises pydantic ``ValidationError``)."""
    if not isinstance(data, dict):
        raise TypeError("an update is a JSON object")
    return Update.model_validate(data, context={"bot": bot} if bot is not None else {})
