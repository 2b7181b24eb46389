"""The member's conversation as an agent reads it: what they typed or tapped, in order,
each tap shown as the label they saw, each reply with the choices it offered.

Inbound button taps arrive as actions (``kb:50``, ``fb:up:1``); a bare digit on SMS or
WeChat answers the numbered choices of the last reply. Both are resolved against the
choices actually offered before them (stored with their labels since the pipeline
records them); older rows without labels fall back to a description of the action.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from bot.core.models import TranscriptEntry
from community.models import KnowledgeItem

Translate = Callable[..., str]


@dataclass(slots=True)
class Offered:
    label: str
    action: str


@dataclass(slots=True)
class Line:
    """One transcript line for the page."""

    entry: TranscriptEntry
    direction: str  # in | out
    text: str  # what to show: the typed text, the tapped label, the reply text
    tapped: bool = False  # a button tap (or a digit answering numbered choices)
    raw: str = ""  # the action or digit behind a tap, for the curious
    offered: list[Offered] = field(default_factory=list)


def offered_choices(payload: Any) -> list[tuple[str, str]]:
    """(action, label or "") pairs stored on an outbound entry; both formats."""
    if not isinstance(payload, dict):
        return []
    actions = [a for a in payload.get("choices") or () if isinstance(a, str)]
    labels = payload.get("labels") or []
    if not isinstance(labels, list) or len(labels) != len(actions):
        labels = [""] * len(actions)
    return [(a, str(lbl)) for a, lbl in zip(actions, labels)]


def describe_action(action: str, _: Translate, titles: dict[int, str]) -> str:
    """A readable name for an action when the label shown is not known."""
    prefix, _sep, rest = action.partition(":")
    if prefix == "kb" and rest.isdigit():
        title = titles.get(int(rest))
        return _("Knowledge item: %(title)s", title=title) if title else _("Knowledge item #%(id)s", id=rest)
    if prefix == "fb":
        verdict = rest.partition(":")[0]
        return _("👍 Helpful") if verdict == "up" else _("👎 Not helpful")
    simple = {
        "human": _("Talk to a person"),
        "post": _("Ask the community"),
        "none": _("None of these"),
        "start": _("Opened the chat"),
        "subscribe": _("Followed the account"),
    }
    if action in simple:
        return simple[action]
    if prefix == "sv":
        return _("Satisfaction: %(n)s / 5", n=rest.partition(":")[2] or "?")
    if prefix == "fw":
        return _("Forward to a friend")
    if prefix == "lang":
        return _("Choose your language")
    if prefix == "acc":
        return _("Accepted an answer")
    if prefix == "vote":
        return _("👍 Helpful")
    return action


def _item_ids(entries: Sequence[TranscriptEntry]) -> set[int]:
    ids: set[int] = set()
    for e in entries:
        actions = [e.action] if e.direction == "in" else [a for a, _l in offered_choices(e.payload)]
        for a in actions:
            if a.startswith("kb:") and a[3:].isdigit():
                ids.add(int(a[3:]))
    return ids


async def item_titles(entries: Sequence[TranscriptEntry]) -> dict[int, str]:
    ids = _item_ids(entries)
    if not ids:
        return {}
    return dict(await KnowledgeItem.filter(id__in=list(ids)).values_list("id", "title"))


def build(entries: Sequence[TranscriptEntry], _: Translate, titles: dict[int, str]) -> list[Line]:
    """Lines in the order things happened (by time, then by id within one commit)."""
    ordered = sorted(entries, key=lambda e: (e.created_at, e.id))
    lines: list[Line] = []
    last_offered: list[Offered] = []
    for e in ordered:
        if e.direction == "out":
            offered = [Offered(label or describe_action(a, _, titles), a) for a, label in offered_choices(e.payload)]
            lines.append(Line(entry=e, direction="out", text=e.text, offered=offered))
            if offered:
                last_offered = offered
            continue
        if e.action:
            match = next((o for o in last_offered if o.action == e.action), None)
            label = match.label if match else describe_action(e.action, _, titles)
            lines.append(Line(entry=e, direction="in", text=label, tapped=True, raw=e.action))
            continue
        text = e.text.strip()
        if text.isdigit() and last_offered and 1 <= int(text) <= len(last_offered):
            picked = last_offered[int(text) - 1]
            lines.append(Line(entry=e, direction="in", text=picked.label, tapped=True, raw=text))
            continue
        lines.append(Line(entry=e, direction="in", text=e.text))
    return lines


async def lines_for(member_id: int, _: Translate, limit: int = 80) -> list[Line]:
    """The member's latest ``limit`` transcript entries as readable lines."""
    entries = list(await TranscriptEntry.filter(member_id=member_id).order_by("-created_at", "-id").limit(limit))
    return build(entries, _, await item_titles(entries))
