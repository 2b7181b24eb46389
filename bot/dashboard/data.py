"""Load a :class:`~bot.dashboard.kpis.History` for a time range from storage.

The dashboard is part of the assembly: it reads the inbox's tickets and surveys and the
ledger's points directly.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from bot.dashboard.kpis import (
    ANSWER_KINDS,
    Contact,
    Event,
    Feedback,
    History,
    PointsEntry,
    SlaTicket,
    Survey,
    TopicTicket,
    Unanswered,
)
from bot.core.models import AnswerFeedback, TranscriptEntry, UnansweredQuestion
from community.inbox.models import Ticket
from community.models import KnowledgeItem
from gamification.models import LedgerEntry

REPEAT_DAYS = 7


async def load_events(since: datetime, until: datetime) -> list[Event]:
    """Transcript rows (inbound text kept, cut to 200 characters, for rephrase detection).
    Offer impressions are marketing, not a service layer: they are not events here."""
    rows = await TranscriptEntry.filter(created_at__gte=since, created_at__lt=until).values_list(
        "id", "member_id", "channel", "direction", "created_at", "kind", "action", "item_id", "text"
    )
    return [
        Event(
            id=r[0],
            member_id=r[1],
            channel=r[2],
            direction=r[3],
            at=r[4],
            kind=r[5] or "",
            action=r[6] or "",
            item_id=r[7],
            text=(r[8] or "")[:200] if r[3] == "in" else "",
        )
        for r in rows
    ]


async def load_history(start: datetime, end: datetime, *, window: timedelta, gap: timedelta) -> History:
    """Records for [start, end), plus the margins the definitions look at: a gap before
    (where a conversation started), the accuracy window and the repeat horizon after."""
    lead = max(gap, timedelta(days=1))
    tail = max(window, timedelta(days=REPEAT_DAYS))
    history = History()
    history.events = await load_events(start - lead, end + tail)
    history.feedback = [
        Feedback(t, h, at)
        for t, h, at in await AnswerFeedback.filter(
            created_at__gte=start,
            created_at__lt=end + window,
            transcript_id__not_isnull=True,
        ).values_list("transcript_id", "helpful", "created_at")
    ]
    history.unanswered = [
        Unanswered(text=r[0], normalized=r[1], channel=r[2], at=r[3])
        for r in await UnansweredQuestion.filter(
            created_at__gte=start,
            created_at__lt=end,
            resolved=False,
        ).values_list("text", "normalized", "channel", "created_at")
    ]
    await _load_inbox(history, start, end)
    history.has_points = True
    history.points = [
        PointsEntry(g, ev, at)
        for g, ev, at in await LedgerEntry.filter(created_at__gte=start, created_at__lt=end).values_list(
            "granted", "event", "created_at"
        )
    ]
    return history


async def _load_inbox(history: History, start: datetime, end: datetime) -> None:
    history.has_surveys = history.has_tickets = True
    rows = await Ticket.filter(
        created_at__gte=start - timedelta(days=REPEAT_DAYS), created_at__lt=end + timedelta(days=REPEAT_DAYS)
    ).values_list("id", "member_id", "channel", "reason", "created_at", "first_response_due", "first_response_at")
    surveys = await Ticket.filter(survey_at__gte=start, survey_at__lt=end, survey_score__not_isnull=True).values_list(
        "survey_score", "survey_at", "channel"
    )
    history.surveys = [Survey(score=s, at=at, channel=ch) for s, at, ch in surveys]
    categories = dict(await KnowledgeItem.all().values_list("id", "category"))

    def item_topic(item_id: int | None) -> str:
        cat = categories.get(item_id) if item_id is not None else None
        return f"cat:{cat}" if cat else (f"item:{item_id}" if item_id is not None else "")

    # a ticket is about what the member last asked before it; a later answer on the same
    # topic, or another ticket about it, is a repeat inquiry
    answered: dict[int, list[Event]] = {}
    for e in history.events:
        if e.direction == "out" and e.kind in ANSWER_KINDS | {"suggest"} and e.item_id is not None:
            answered.setdefault(e.member_id, []).append(e)
    for evs in answered.values():
        evs.sort(key=lambda e: e.at)
    for tid, mid, channel, reason, at, due, first in rows:
        before = [e for e in answered.get(mid, []) if at - timedelta(days=1) <= e.at <= at]
        topic = item_topic(before[-1].item_id) if before else f"reason:{reason}"
        ticket = TopicTicket(id=tid, member_id=mid, channel=channel, at=at, topic=topic)
        history.contacts.append(Contact(mid, at, topic, ref=f"ticket:{tid}"))
        if start <= at < end:
            history.tickets.append(ticket)
            history.sla.append(SlaTicket(id=tid, channel=channel, created_at=at, due_at=due, first_response_at=first))
    for mid, evs in answered.items():
        history.contacts.extend(Contact(mid, e.at, item_topic(e.item_id), ref=f"answer:{e.id}") for e in evs)
