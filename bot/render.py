"""Graceful degradation of a Reply for text-only wires (SMS, WeChat passive replies)."""
from __future__ import annotations

from bot.i18n import Gettext
from bot.messages import Reply


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
        parts.append(
            "\n".join(_("Reply %(n)s: %(label)s", n=i, label=c.label) for i, c in enumerate(reply.choices, 1))
        )
    return "\n\n".join(p for p in parts if p)
