"""Long answers on SMS: cut to ``sms_max_segments`` with a "回复 N 看全文" choice.

The wire half of paging: how much of a reply fits the segment budget (GSM-7/UCS-2
counting), where to cut it, and the "show the full text" choice (action
:data:`bot.core.inbound.MORE_ACTION`). The SMS sender offers it as
:class:`bot.core.inbound.PagedChannel`; the conversation half (keeping the rest in the
member's state, answering the choice with the next page) is ``handlers.continuation``.
Because the choice is an ordinary :class:`~bot.core.messages.Choice`, the pipeline keeps
it pending and a later digit maps back.
"""

from __future__ import annotations

from bot.core.i18n import Gettext
from bot.core.inbound import MORE_ACTION
from bot.core.messages import Choice, Reply
from bot.core.render import numbered_text
from sms_gateway.encoding import count_segments

_BREAKS = ("\n", "。", "！", "？", "；", ". ", "! ", "? ", "; ", "，", ", ", " ")


def render(reply: Reply, _: Gettext) -> str:
    """The SMS text of a reply: choices as numbered lines, cards as links."""
    return numbered_text(reply, _)


def _cut_point(text: str, limit: int) -> int:
    """A cut at or before ``limit``, preferring a line or sentence end close to it."""
    window = text[max(0, limit - 40) : limit]
    for mark in _BREAKS:
        pos = window.rfind(mark)
        if pos >= 0:
            return max(0, limit - 40) + pos + len(mark)
    return limit


def shorten_text(text: str, max_segments: int) -> str:
    """``text`` cut (with "…") to at most ``max_segments`` parts."""
    if count_segments(text) <= max_segments:
        return text
    lo, hi = 0, len(text)
    while lo < hi:
        mid = (lo + hi + 1) // 2
        if count_segments(text[:mid].rstrip() + "…") <= max_segments:
            lo = mid
        else:
            hi = mid - 1
    return text[: _cut_point(text, lo) or lo].rstrip() + "…"


def fit(reply: Reply, _: Gettext, max_segments: int) -> tuple[Reply, Reply | None]:
    """``reply`` shortened to ``max_segments`` parts, and the rest (None if it fitted)."""
    if count_segments(render(reply, _)) <= max_segments:
        return reply, None
    more = Choice(label=_("Show the full text"), action=f"{MORE_ACTION}:")
    ellipsis = "…"
    keep_choices = [*reply.choices, more]
    cards = reply.cards

    def fits(n: int, choices: list[Choice], cards_: list) -> bool:  # type: ignore[type-arg]
        head = reply.text[:n].rstrip() + ellipsis
        return count_segments(render(Reply(text=head, choices=choices, cards=cards_), _)) <= max_segments

    if not fits(1, keep_choices, cards):
        # the options leave no room for text (pathological): plain cut, no second page
        return Reply(
            text=shorten_text(render(reply, _), max_segments),
            kind=reply.kind,
            item_id=reply.item_id,
            confidence=reply.confidence,
        ), None
    lo, hi = 1, len(reply.text)
    while lo < hi:  # the longest prefix that fits (at least one character: pages progress)
        mid = (lo + hi + 1) // 2
        if fits(mid, keep_choices, cards):
            lo = mid
        else:
            hi = mid - 1
    cut = _cut_point(reply.text, lo) or lo
    head = Reply(
        text=reply.text[:cut].rstrip() + ellipsis,
        choices=keep_choices,
        cards=cards,
        kind=reply.kind,
        item_id=reply.item_id,
        confidence=reply.confidence,
    )
    rest = Reply(  # the original options come back with the last page
        text=reply.text[cut:].lstrip(),
        choices=list(reply.choices),
        kind=reply.kind,
        item_id=reply.item_id,
    )
    return head, rest
