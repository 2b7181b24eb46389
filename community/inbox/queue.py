"""The inbox queue as one SQL query: filters, search, priority order and paging.

Order: urgent first (a complaint, a VIP member, a repeat contact, or an SLA already
missed), then first in, first out; ties by ticket number. The order and the page are
computed by the database, so an urgent ticket is on page one however long the backlog is
(before, the 200 oldest were loaded and only then sorted, and a new complaint behind 200
ordinary tickets was not shown at all).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timezone

from tortoise.expressions import Case, Q, Subquery, When
from tortoise.queryset import QuerySet

from community.inbox.models import STATUSES, Ticket, TicketMessage
from community.members.models import MemberTag

LIVE = ("open", "claimed")
PAGE_SIZE = 50
MAX_SEARCH = 100


@dataclass(frozen=True, slots=True)
class QueueFilter:
    """What the agent asked to see. ``status`` "live" means open or claimed; ``assignee``
    is a staff id, "none" (unassigned) or "" (anyone)."""

    status: str = "live"
    channel: str = ""
    tag: str = ""
    assignee: str = ""
    search: str = ""
    urgent_only: bool = False

    @classmethod
    def from_query(cls, query: Mapping[str, str], me: int | None = None) -> "QueueFilter":
        get = query.get
        status = str(get("status", "live") or "live")
        if status not in (*STATUSES, "live", "all"):
            status = "live"
        assignee = str(get("assignee", "") or "")
        if assignee == "me" and me is not None:
            assignee = str(me)
        if assignee not in ("", "none") and not (assignee.isascii() and assignee.isdigit()):
            assignee = ""
        return cls(
            status=status,
            channel=str(get("channel", "") or "")[:16],
            tag=str(get("tag", "") or "")[:64].strip().lower(),
            assignee=assignee,
            search=str(get("q", "") or "").strip()[:MAX_SEARCH],
            urgent_only=str(get("urgent", "")) == "1",
        )


@dataclass
class QueuePage:
    tickets: list[Ticket]
    total: int
    page: int
    pages: int
    urgent_total: int = 0
    breached_total: int = 0
    filters: QueueFilter = field(default_factory=QueueFilter)


def breached_q(now: datetime) -> Q:
    """SLA missed: no first reply by its due time, or not resolved by its due time."""
    return (Q(first_response_at__isnull=True) & Q(first_response_due__lt=now)) | Q(resolution_due__lt=now)


def filtered(f: QueueFilter, now: datetime) -> QuerySet[Ticket]:
    q = Ticket.all()
    if f.status == "live":
        q = q.filter(status__in=LIVE)
    elif f.status != "all":
        q = q.filter(status=f.status)
    if f.channel:
        q = q.filter(channel=f.channel)
    if f.assignee == "none":
        q = q.filter(assignee_id__isnull=True)
    elif f.assignee:
        q = q.filter(assignee_id=int(f.assignee))
    if f.tag:
        q = q.filter(member_id__in=Subquery(MemberTag.filter(tag=f.tag).values("member_id")))
    if f.urgent_only:
        q = q.filter(Q(urgent=True) | (breached_q(now) & Q(status__in=LIVE)))
    if f.search:
        s = f.search.lstrip("#")
        cond = (
            Q(summary__icontains=f.search)
            | Q(member__display_name__icontains=f.search)
            | Q(id__in=Subquery(TicketMessage.filter(text__icontains=f.search).values("ticket_id")))
        )
        if s.isascii() and s.isdigit() and len(s) <= 9:
            cond = cond | Q(id=int(s)) | Q(member_id=int(s))
        q = q.filter(cond)
    return q


def ordered(q: QuerySet[Ticket], now: datetime) -> QuerySet[Ticket]:
    rank = Case(When(Q(urgent=True), then="0"), When(breached_q(now) & Q(status__in=LIVE), then="0"), default="1")
    return q.annotate(rank=rank).order_by("rank", "created_at", "id")


async def page(f: QueueFilter, page_no: int = 1, size: int = PAGE_SIZE, now: datetime | None = None) -> QueuePage:
    """One page of the filtered queue, urgent first, with the totals the page shows."""
    now = now or datetime.now(timezone.utc)
    size = max(1, min(size, 200))
    base = filtered(f, now)
    total = await base.count()
    pages = max(1, -(-total // size))
    page_no = max(1, min(page_no, pages))
    rows = (
        await ordered(filtered(f, now), now)
        .select_related("member", "assignee")
        .offset((page_no - 1) * size)
        .limit(size)
    )
    live = filtered(QueueFilter(), now)
    urgent_total = await live.filter(Q(urgent=True) | breached_q(now)).count()
    breached_total = await filtered(QueueFilter(), now).filter(breached_q(now)).count()
    return QueuePage(
        tickets=list(rows),
        total=total,
        page=page_no,
        pages=pages,
        urgent_total=urgent_total,
        breached_total=breached_total,
        filters=f,
    )
