"""Replies as a member reads them: in their script, and degraded for text-only wires (SMS,
WeChat passive replies)."""

from __future__ import annotations

from dataclasses import replace
from functools import lru_cache

from bot.core.i18n import Gettext
from bot.core.messages import Choice, Reply


@lru_cache(maxsize=1)
def _s2twp():  # type: ignore[no-untyped-def]
    import opencc  # opencc-python-reimplemented

    return opencc.OpenCC("s2twp")


@lru_cache(maxsize=8192)
def to_traditional(text: str) -> str:
    """Simplified Chinese in Taiwan's script and wording; Traditional and Latin text stay.

    A service centre's replies are a few hundred texts over and over: the cache makes the
    conversion a lookup."""
    if not text or text.isascii():
        return text
    return str(_s2twp().convert(text))


def in_script(replies: list[Reply], locale: str) -> list[Reply]:
    """The replies in the member's script: knowledge written only in zh_CN, peer answers and
    labels reach a zh_TW member in Traditional characters."""
    if locale != "zh_TW":
        return replies
    return [
        replace(
            r,
            text=to_traditional(r.text),
            choices=[Choice(label=to_traditional(c.label), action=c.action) for c in r.choices],
            cards=[
                replace(c, title=to_traditional(c.title), description=to_traditional(c.description)) for c in r.cards
            ],
        )
        for r in replies
    ]


def numbered_text(reply: Reply, _: Gettext, *, with_links: bool = True) -> str:
    """Text with choices as "回复 1 …" lines and cards as title + link lines.

    The pipeline keeps the choices' actions as pending, so a later "1" maps back.
    """
    parts = [reply.text.rstrip()] if reply.text else []
    if with_links:
        for card in reply.cards:
            line = card.title if not card.url else f"{card.title} {card.url}"
            parts.append(line)
    if reply.choices:
        parts.append("\n".join(_("Reply %(n)s: %(label)s", n=i, label=c.label) for i, c in enumerate(reply.choices, 1)))
    return "\n\n".join(p for p in parts if p)
