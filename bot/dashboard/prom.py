"""The dashboard's figures in ``/metrics``, recomputed in the background.

A scrape only reads the last snapshot: computing the KPIs reads a week of transcript,
which must not happen on every Prometheus scrape of a large database.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from aiohttp import web
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from bot.core.settings import Settings
from bot.dashboard.reports import Query, build_report, offer_rows

log = logging.getLogger(__name__)

WINDOW_DAYS = 7  # the gauges cover the trailing week


@dataclass(slots=True)
class Snapshot:
    at: float = 0.0
    kpis: dict[str, dict[str, float]] = field(default_factory=dict)  # kpi -> channel -> value
    funnel: dict[str, tuple[int, float | None]] = field(default_factory=dict)
    sla: dict[str, float] = field(default_factory=dict)
    unanswered: int = 0
    points: tuple[int, int] | None = None
    offers: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # offer id -> (imp, click, accept)


class DashboardCollector(Collector):
    """Serves the latest :class:`Snapshot`; registered once per process."""

    def __init__(self) -> None:
        self.snapshot = Snapshot()

    def describe(self) -> list:  # type: ignore[type-arg]
        return []  # no describe-time collection: values come from the snapshot

    def collect(self) -> Iterator[GaugeMetricFamily]:
        s = self.snapshot
        names = {
            "self_service": ("everycsr_kpi_self_service_share", "Conversations resolved without a person (7 days)"),
            "accuracy": (
                "everycsr_kpi_answer_accuracy",
                "Confident answers matched: 👍/👎, else no same-question rephrase or hand-on",
            ),
            "satisfaction": ("everycsr_kpi_satisfaction", "Survey answers of 4 or 5 out of 5"),
            "repeat": (
                "everycsr_kpi_repeat_inquiry_share",
                "Hotline tickets followed by a same-topic contact in 7 days",
            ),
        }
        for key, (name, doc) in names.items():
            g = GaugeMetricFamily(name, doc, labels=["channel"])
            for channel, value in sorted(s.kpis.get(key, {}).items()):
                g.add_metric([channel], value)
            yield g
        reached = GaugeMetricFamily(
            "everycsr_funnel_conversations", "Conversations reaching each layer (7 days)", labels=["layer"]
        )
        rate = GaugeMetricFamily(
            "everycsr_funnel_handon_rate", "Share handed on to the next layer (7 days)", labels=["layer"]
        )
        for layer, (count, r) in s.funnel.items():
            reached.add_metric([layer], count)
            if r is not None:
                rate.add_metric([layer], r)
        yield reached
        yield rate
        sla = GaugeMetricFamily(
            "everycsr_agent_sla_attainment", "Tickets answered within the first-response SLA", labels=["channel"]
        )
        for channel, value in sorted(s.sla.items()):
            sla.add_metric([channel], value)
        yield sla
        yield GaugeMetricFamily(
            "everycsr_unanswered_questions", "Open unanswered questions (7 days)", value=s.unanswered
        )
        if s.points is not None:
            yield GaugeMetricFamily("everycsr_points_issued", "Points issued (7 days)", value=s.points[0])
            yield GaugeMetricFamily("everycsr_points_redeemed", "Points redeemed (7 days)", value=s.points[1])
        offers = GaugeMetricFamily(
            "everycsr_offer_events", "Offer impressions, clicks, accepts (7 days)", labels=["offer", "kind"]
        )
        for oid, (imp, clk, acc) in sorted(s.offers.items()):
            offers.add_metric([oid, "impression"], imp)
            offers.add_metric([oid, "click"], clk)
            offers.add_metric([oid, "accept"], acc)
        yield offers
        yield GaugeMetricFamily(
            "everycsr_dashboard_refreshed_timestamp_seconds", "When these dashboard gauges were computed", value=s.at
        )


COLLECTOR = DashboardCollector()
_registered = False


def register() -> None:
    global _registered
    if not _registered:
        REGISTRY.register(COLLECTOR)
        _registered = True


async def refresh(settings: Settings, now: datetime | None = None) -> Snapshot:
    """Recompute the trailing week's figures and publish them to the collector."""
    now = now or datetime.now(timezone.utc)
    q = Query(period="day", days=WINDOW_DAYS, start=now - timedelta(days=WINDOW_DAYS), end=now)
    rep, history = await build_report(settings, q, now)
    snap = Snapshot(at=time.time())
    for key in ("self_service", "accuracy", "satisfaction", "repeat"):
        values: dict[str, float] = {}
        for row in [*rep.by_channel, rep.total]:
            v = getattr(row, key).value
            if v is not None:
                values[row.key] = v
        snap.kpis[key] = values
    snap.funnel = {s.layer: (s.reached, s.handon_rate) for s in rep.funnel}
    snap.sla = {k: r.value for k, r in [*rep.sla_by_channel.items(), ("all", rep.sla)] if r.value is not None}
    snap.unanswered = len(history.unanswered)
    snap.points = (rep.points_issued, rep.points_redeemed) if history.has_points else None
    snap.offers = {str(r[0]): (r[2], r[3], r[4]) for r in await offer_rows(q)}
    COLLECTOR.snapshot = snap
    return snap


def setup(app: web.Application, settings: Settings) -> None:
    register()

    async def loop(app: web.Application) -> None:
        while True:
            try:
                await refresh(settings)
            except asyncio.CancelledError:
                raise
            except Exception:  # a failed refresh keeps the last figures
                log.exception("dashboard metrics refresh failed")
            await asyncio.sleep(settings.dashboard_refresh_seconds)

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        task = asyncio.create_task(loop(app))
        yield
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)

    app.cleanup_ctx.append(ctx)
