"""Every member's display name, one function for leaderboards, community pages and the inbox.

The member's chosen name ("改名 X" / "name X"), else the channel profile's name, else the
verified phone masked (138****5678), else "会员0008" (translated) — never a bare "#8"."""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable
from typing import Protocol

MAX_NAME = 16
_URLISH = re.compile(r"(https?:|www\.|://|\.com\b|\.cn\b)", re.IGNORECASE)


class Named(Protocol):
    id: int
    nickname: str
    display_name: str
    phone: str | None


def mask_phone(phone: str) -> str:
    """138****5678 for +8613800135678 (the national number, middle digits hidden)."""
    digits = re.sub(r"\D", "", phone)
    if phone.startswith("+86") and len(digits) == 13:
        digits = digits[2:]
    if len(digits) < 7:
        return "*" * len(digits)
    return f"{digits[:3]}****{digits[-4:]}"


def _tidy(profile: str) -> str:
    """A channel profile's name as shown: no control or invisible characters (a right-to-left
    override could disguise it), whitespace collapsed, at most 32 characters."""
    text = "".join(ch for ch in (profile or "") if not unicodedata.category(ch).startswith("C"))
    return " ".join(text.split())[:32]


def display_name(member: Named, gettext: Callable[..., str]) -> str:
    """What other people see for ``member``; ``gettext`` is the viewer's (``ctx._``, a page's ``_``)."""
    for name in (getattr(member, "nickname", ""), _tidy(member.display_name)):
        if name and name.strip():
            return name.strip()
    if member.phone:
        return mask_phone(member.phone)
    number = f"{member.id:04d}"
    return gettext("Member %(number)s", number=number)


def clean_nickname(raw: str) -> str | None:
    """A chosen name as stored, or None when it is not acceptable (length, control or
    invisible characters, links). Watch-list screening is the caller's (moderation)."""
    text = unicodedata.normalize("NFKC", raw)
    if any(unicodedata.category(ch).startswith("C") for ch in text):
        return None
    text = " ".join(text.split())
    if not text or len(text) > MAX_NAME or _URLISH.search(text):
        return None
    return text
