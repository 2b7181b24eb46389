"""Per-agent satisfaction (CSAT) and response report for the inbox."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from statistics import median

from community.inbox.models import Ticket


@dataclass
class AgentRow:
    staff_id: int | None
    name: str
    closed: int = 0
    rated: int = 0
    satisfied: int = 0  # 4 or 5 out of 5
    score_sum: int = 0
    first_reply_minutes: list[float] = field(default_factory=list)
    within_sla: int = 0
    replied: int = 0
    comments: list[tuple[int, int, str]] = field(default_factory=list)  # (ticket, score, comment)

    @property
    def csat(self) -> float | None:
        """Share of answered surveys scored 4 or 5 (the usual CSAT definition)."""
        return self.satisfied / self.rated if self.rated else None

    @property
    def average(self) -> float | None:
        return self.score_sum / self.rated if self.rated else None

    @property
    def median_first_reply(self) -> float | None:
        return median(self.first_reply_minutes) if self.first_reply_minutes else None

    @property
    def sla_share(self) -> float | None:
        return self.within_sla / self.replied if self.replied else None


async def agent_report(days: int = 30, now: datetime | None = None) -> list[AgentRow]:
    """Tickets closed in the last ``days`` days, by the agent who owned them at closing."""
    now = now or datetime.now(timezone.utc)
    rows: dict[int | None, AgentRow] = {}
    closed = await Ticket.filter(status="closed", closed_at__gte=now - timedelta(days=days)).select_related("assignee")
    for t in closed:
        key = t.assignee_id
        if key not in rows:
            name = (t.assignee.display_name or t.assignee.username) if t.assignee else ""
            rows[key] = AgentRow(staff_id=key, name=name)
        r = rows[key]
        r.closed += 1
        if t.first_response_at is not None:
            r.replied += 1
            r.first_reply_minutes.append((t.first_response_at - t.created_at).total_seconds() / 60)
            if t.first_response_at <= t.first_response_due:
                r.within_sla += 1
        if t.survey_score is not None:
            r.rated += 1
            r.score_sum += t.survey_score
            if t.survey_score >= 4:
                r.satisfied += 1
            if t.survey_comment:
                r.comments.append((t.id, t.survey_score, t.survey_comment))
    for r in rows.values():
        r.comments.sort(reverse=True)
        del r.comments[10:]
    return sorted(rows.values(), key=lambda r: (r.staff_id is None, r.name))
