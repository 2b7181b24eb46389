"""A :class:`~bot.core.messages.Reply` as Telegram messages: escaped HTML, inline keyboards.

Everything from the knowledge base or members is escaped (the text is sent with HTML
parse mode, so a stray ``<b>`` must show as text, not break the message). Long answers
are split at Telegram's 4096-character limit on paragraph boundaries; the keyboard
rides on the last part.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.channels.telegram.updates import CALLBACK_INDEX_PREFIX
from bot.core.messages import Reply

MAX_MESSAGE = 4096  # characters after entity parsing, counted in UTF-16 code units
MAX_CALLBACK_DATA = 64  # bytes
_URL_SCHEMES = ("https://", "http://", "tg://")
_SENTENCE_END = re.compile(r"(?<=[。！？；!?;.])")


@dataclass(frozen=True, slots=True)
class Part:
    """One Telegram message: its plain text, the HTML to send, and its keyboard."""

    text: str
    html: str
    markup: InlineKeyboardMarkup | None = None


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def _hard_split(text: str, limit: int) -> list[str]:
    out, current, size = [], [], 0
    for ch in text:
        n = 2 if ord(ch) > 0xFFFF else 1
        if size + n > limit:
            out.append("".join(current))
            current, size = [], 0
        current.append(ch)
        size += n
    if current:
        out.append("".join(current))
    return out


def _pack(text: str, limit: int, level: int = 0) -> list[str]:
    """Pieces of ``text`` each within ``limit``, cut at the coarsest boundary that works:
    paragraphs, then lines, then sentences, then spaces, then anywhere."""
    if utf16_len(text) <= limit:
        return [text]
    if level == 0:
        units, sep = re.split(r"\n\s*\n", text), "\n\n"
    elif level == 1:
        units, sep = text.split("\n"), "\n"
    elif level == 2:
        units, sep = [u for u in _SENTENCE_END.split(text) if u], ""
    elif level == 3:
        units, sep = text.split(" "), " "
    else:
        return _hard_split(text, limit)
    pieces: list[str] = []
    current = ""
    for unit in units:
        for piece in _pack(unit, limit, level + 1):
            candidate = f"{current}{sep}{piece}" if current else piece
            if utf16_len(candidate) <= limit:
                current = candidate
            else:
                if current:
                    pieces.append(current)
                current = piece
    if current:
        pieces.append(current)
    return pieces


def split_text(text: str, limit: int = MAX_MESSAGE) -> list[str]:
    """Non-empty parts of at most ``limit`` UTF-16 units, split on paragraph boundaries
    where possible; no character other than whitespace at a cut is lost."""
    parts = [p.strip() for p in _pack(text.strip(), limit)]
    return [p for p in parts if p]


def callback_data(action: str, index: int) -> str:
    """The action itself, or ``#<index>`` (a pending choice) when it exceeds 64 bytes."""
    if len(action.encode("utf-8")) <= MAX_CALLBACK_DATA and not action.startswith(CALLBACK_INDEX_PREFIX):
        return action
    return f"{CALLBACK_INDEX_PREFIX}{index}"


def keyboard(reply: Reply) -> InlineKeyboardMarkup | None:
    """Choices as callback buttons, one per row; cards with a link as URL buttons."""
    rows: list[list[InlineKeyboardButton]] = []
    for i, choice in enumerate(reply.choices):
        rows.append(
            [InlineKeyboardButton(text=choice.label[:64] or "…", callback_data=callback_data(choice.action, i))]
        )
    for card in reply.cards:
        if card.url.startswith(_URL_SCHEMES):
            rows.append([InlineKeyboardButton(text=(card.title or card.url)[:64], url=card.url)])
    return InlineKeyboardMarkup(inline_keyboard=rows) if rows else None


def plain_text(reply: Reply) -> str:
    """The reply's text plus the cards that have no link to become a button."""
    blocks = [reply.text.strip()] if reply.text.strip() else []
    for card in reply.cards:
        if not card.url.startswith(_URL_SCHEMES):
            blocks.append("\n".join(x for x in (card.title, card.description, card.url) if x))
    return "\n\n".join(blocks)


def render(reply: Reply, limit: int = MAX_MESSAGE) -> list[Part]:
    """The messages that show ``reply``; an empty text with buttons gets a "…" line."""
    markup = keyboard(reply)
    chunks = split_text(plain_text(reply), limit)
    if not chunks:
        if markup is None:
            return []
        chunks = ["…"]
    parts = [Part(text=c, html=html.escape(c, quote=False)) for c in chunks]
    last = parts[-1]
    parts[-1] = Part(text=last.text, html=last.html, markup=markup)
    return parts
