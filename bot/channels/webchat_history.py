"""A web chat member's conversation as the page shows it again after a reload.

Read from the server's transcript (both directions, in order), never from the browser.
Only the newest offer of choices can still be tapped: the one the pipeline holds as the
member's pending choices, or one the member has not answered yet (an agent's survey);
older choices come back as disabled labels, so a tap on a stale menu is never sent."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from bot.core.models import Member, OutboxMessage, TranscriptEntry
from bot.core.render import to_traditional
from bot.core.state import load_state
from bot.core.stores import member_state_key

CHANNEL = "web"
PAGE = 50
MAX_PAGE = 100


@dataclass
class HistoryChoice:
    label: str
    action: str
    active: bool


@dataclass
class HistoryEntry:
    id: int
    direction: str  # in | out
    text: str
    kind: str
    choices: list[HistoryChoice] = field(default_factory=list)


@dataclass
class History:
    entries: list[HistoryEntry]
    more: bool  # older entries exist: ask again with before=<first id>
    last_update: int  # the newest outbox row already covered: live updates start after it

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _choices(entry: TranscriptEntry) -> list[tuple[str, str]]:
    payload = entry.payload if isinstance(entry.payload, dict) else {}
    actions = payload.get("choices") or []
    labels = payload.get("labels") or []
    if not isinstance(actions, list) or not isinstance(labels, list):
        return []
    return [(str(label), str(action)) for action, label in zip(actions, labels)]


async def _live_offer(member_id: int, pending: list[str] | None) -> int | None:
    """The transcript id of the choices that may still be tapped, if any."""
    newest = await (
        TranscriptEntry.filter(member_id=member_id, channel=CHANNEL, direction="out", payload__isnull=False)
        .order_by("-id")
        .first()
    )
    if newest is None or not _choices(newest):
        return None
    if pending and [a for _, a in _choices(newest)] == pending:
        return int(newest.id)
    answered = await TranscriptEntry.filter(
        member_id=member_id, channel=CHANNEL, direction="in", id__gt=newest.id
    ).exists()
    return None if answered else int(newest.id)


async def member_history(services: Any, member: Member, *, before: int | None = None, limit: int = PAGE) -> History:
    """One page of ``member``'s web chat, oldest first, ending before transcript id ``before``."""
    limit = max(1, min(limit, MAX_PAGE))
    # the live-update watermark is read before the transcript: a row stored after it is
    # above it (the event stream brings it); read after, a whole enqueue could fall between
    # the two reads and be counted as shown without being in the page. What is left is the
    # moment between the outbox row and its transcript entry inside one enqueue
    newest = await OutboxMessage.filter(channel=CHANNEL, member_id=member.id).order_by("-id").first()
    q = TranscriptEntry.filter(member_id=member.id, channel=CHANNEL)
    if before is not None:
        q = q.filter(id__lt=before)
    rows = list(reversed(await q.order_by("-id").limit(limit + 1)))
    more = len(rows) > limit
    rows = rows[-limit:]
    pending = (await load_state(services.state, member_state_key(member.id))).choices or None
    live = await _live_offer(member.id, pending)
    convert = to_traditional if member.locale == "zh_TW" else (lambda s: s)

    labels: dict[str, str] = {}  # what a tapped action read as, from the offers before it
    if rows and rows[0].direction == "in" and rows[0].action:
        earlier = await (
            TranscriptEntry.filter(
                member_id=member.id, channel=CHANNEL, direction="out", payload__isnull=False, id__lt=rows[0].id
            )
            .order_by("-id")
            .first()
        )
        if earlier is not None:
            labels.update({a: label for label, a in _choices(earlier)})
    entries: list[HistoryEntry] = []
    for row in rows:
        if row.direction == "in":
            text = row.text or labels.get(row.action, "")
            if text:  # a bare event (a deep link's "start") is not something the member said
                entries.append(HistoryEntry(row.id, "in", text, "", []))
            continue
        offered = _choices(row)
        labels.update({a: label for label, a in offered})
        entries.append(
            HistoryEntry(
                row.id,
                "out",
                convert(row.text),
                row.kind,
                [HistoryChoice(convert(label), action, row.id == live) for label, action in offered],
            )
        )
    return History(entries, more, newest.id if newest else 0)
