"""Questions that peers did not settle in time: bumped once, then handed to an agent.

``check_deadlines`` is one pass (tests call it with ``now=``); ``run_deadline_loop``
repeats it in the background. Each step is a conditional update, so several workers
running the loop bump and ticket a question once.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from bot.core.messages import Reply
from community.inbox import service as inbox
from community.qa.models import Question
from community.qa.service import member_gettext, offer_to_helpers

if TYPE_CHECKING:
    from bot.core.services import Services

log = logging.getLogger(__name__)


@dataclass(slots=True)
class DeadlineReport:
    bumped: int = 0
    ticketed: int = 0


async def check_deadlines(services: "Services", now: datetime | None = None, limit: int = 200) -> DeadlineReport:
    now = now or datetime.now(timezone.utc)
    report = DeadlineReport()
    due = await Question.filter(status="open", deadline_at__lte=now).order_by("deadline_at").limit(limit)
    for q in due:
        if await to_ticket(services, q):
            report.ticketed += 1
    stale = await Question.filter(status="open", bumped_at=None, bump_at__lte=now).order_by("bump_at").limit(limit)
    for q in stale:
        if not await Question.filter(id=q.id, status="open", bumped_at=None).update(bumped_at=now):
            continue
        report.bumped += 1
        await offer_to_helpers(services, q, now=now)
    return report


async def to_ticket(services: "Services", q: Question) -> bool:
    """Hand one open question to the agents (once) and tell the asker."""
    if not await Question.filter(id=q.id, status="open").update(status="ticketed"):
        return False
    ticket, _created = await inbox.open_ticket(
        services, q.member_id, q.channel, "deadline", summary=q.text, question_id=q.id, unanswered_id=q.unanswered_id
    )
    await Question.filter(id=q.id).update(ticket_id=ticket.id)
    _ = await member_gettext(services, q.member_id)
    await services.outbox.to_member(
        q.member_id,
        Reply(
            text=_(
                "No one in the community has settled your question %(code)s yet, so we have passed it to "
                "our service staff. An agent will reply to you here.",
                code=q.code,
            ),
            kind="handover",
        ),
        purpose="system",
        idempotency_key=f"qa-ticket:{q.id}",
    )
    return True


async def run_deadline_loop(services: "Services", interval: float) -> None:
    while True:
        try:
            await check_deadlines(services)
        except asyncio.CancelledError:
            raise
        except Exception:  # database hiccup: try again next round
            log.exception("question deadline check failed")
        await asyncio.sleep(interval)
