"""SLA breach alerts: Prometheus gauges, and a live event to open inbox pages when a
ticket newly misses its first-response or resolution time."""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from prometheus_client import Gauge
from tortoise.expressions import Q

from community.inbox import events
from community.inbox.models import Ticket

if TYPE_CHECKING:
    from bot.core.services import Services

log = logging.getLogger(__name__)

LIVE = ("open", "claimed")
LIVE_TICKETS = Gauge("everycsr_inbox_live_tickets", "Open or claimed tickets", ["urgent"])
BREACHED = Gauge(
    "everycsr_inbox_sla_breached_tickets", "Live tickets past an SLA due time", ["sla"]
)  # sla: first_response | resolution
OLDEST_WAIT = Gauge("everycsr_inbox_oldest_unanswered_seconds", "Age of the oldest live ticket without a first reply")


@dataclass(frozen=True, slots=True)
class SlaCounts:
    live: int
    urgent: int
    first_response: int  # no first reply by its due time
    resolution: int  # not closed by its due time
    oldest_wait_seconds: float
    breached_ids: frozenset[int]


async def counts(now: datetime | None = None) -> SlaCounts:
    now = now or datetime.now(timezone.utc)
    live = Ticket.filter(status__in=LIVE)
    first_q = Q(first_response_at__isnull=True) & Q(first_response_due__lt=now)
    res_q = Q(resolution_due__lt=now)
    # tortoise types a flat values_list as tuples
    ids: list[int] = await live.filter(first_q | res_q).values_list("id", flat=True)  # type: ignore[assignment]
    oldest = await Ticket.filter(status__in=LIVE, first_response_at__isnull=True).order_by("created_at").first()
    return SlaCounts(
        live=await live.count(),
        urgent=await Ticket.filter(status__in=LIVE, urgent=True).count(),
        first_response=await Ticket.filter(status__in=LIVE).filter(first_q).count(),
        resolution=await Ticket.filter(status__in=LIVE).filter(res_q).count(),
        oldest_wait_seconds=(now - oldest.created_at).total_seconds() if oldest else 0.0,
        breached_ids=frozenset(ids),
    )


class SlaWatch:
    """Updates the gauges; announces each ticket once when it first breaches."""

    def __init__(self) -> None:
        self.known: frozenset[int] | None = None

    async def check(self, services: "Services", now: datetime | None = None) -> SlaCounts:
        c = await counts(now)
        LIVE_TICKETS.labels("yes").set(c.urgent)
        LIVE_TICKETS.labels("no").set(c.live - c.urgent)
        BREACHED.labels("first_response").set(c.first_response)
        BREACHED.labels("resolution").set(c.resolution)
        OLDEST_WAIT.set(c.oldest_wait_seconds)
        new = c.breached_ids - (self.known or frozenset())
        if self.known is not None:  # after a restart, pages already show what is breached
            for tid in sorted(new):
                await events.publish(services, {"type": "ticket", "ticket": tid, "what": "sla"})
        self.known = c.breached_ids
        return c


async def run_sla_loop(services: "Services", every: float) -> None:
    watch = SlaWatch()
    while True:
        try:
            await watch.check(services)
        except asyncio.CancelledError:
            raise
        except Exception:  # a failed check keeps the last figures
            log.exception("inbox SLA check failed")
        await asyncio.sleep(every)
