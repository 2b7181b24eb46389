"""The dashboard's figures in ``/metrics``: every web process serves the latest published snapshot.

Computing them reads a week of transcript, so no web process does: one process of the
deployment computes and publishes (``bot/dashboard/publisher.py``), and a scrape only reads the
snapshot this process holds. How it arrives:

- with Redis, every web process reads ``everycsr:dashboard:snapshot`` every
  ``min(15 s, BOT_DASHBOARD_REFRESH_SECONDS)`` (one GET; a new value is parsed once);
- without Redis (one process), the process starts the KPI process as its child
  (``python -m bot.workers dashboard --settings-stdin``) and reads its JSON lines.

A single process (role ``both``: ``python -m bot run``, ``make demo``) starts the child in both
cases (``BOT_DASHBOARD_KPI_CHILD``); the supervisor's web processes (role ``web``) never do: the
supervisor runs the KPI process beside them.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import sys
import time
from collections.abc import AsyncIterator, Iterator
from datetime import datetime

from aiohttp import web
from prometheus_client import REGISTRY
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector
from redis.asyncio import Redis

from bot.core.app_keys import PROCESS_ROLE, SERVICES
from bot.core.settings import ROOT, Settings
from bot.dashboard.publisher import SNAPSHOT_KEY, compute
from bot.dashboard.snapshot import Snapshot, loads

log = logging.getLogger(__name__)

__all__ = [
    "COLLECTOR",
    "KPI_CHILD",
    "DashboardCollector",
    "KpiChild",
    "Snapshot",
    "follow_redis",
    "refresh",
    "register",
    "setup",
]

# the KPI process a single web process starts (bot/workers.py: main)
CHILD_ARGV = (sys.executable, "-m", "bot.workers", "dashboard", "--settings-stdin")
STREAM_LIMIT = 16 * 2**20  # one snapshot line (offers are per offer id)


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
    """Compute the figures *in this process* and serve them: for tests and one-off tools only;
    a web process never calls it (the KPI process computes)."""
    snap = await compute(settings, now)
    COLLECTOR.snapshot = snap
    return snap


async def follow_redis(redis: Redis, every: float, collector: DashboardCollector = COLLECTOR) -> None:
    """Serve what the KPI process last published in Redis; an unreadable value or an outage
    keeps the figures already held (their age shows in the timestamp gauge)."""
    last: bytes | None = None
    failing = False
    me = asyncio.current_task()
    while True:
        if me is not None and me.cancelling():  # a cancel a Redis call swallowed: stop all the same
            raise asyncio.CancelledError
        try:
            raw = await redis.get(SNAPSHOT_KEY)
            if raw is not None and raw != last:
                collector.snapshot = loads(raw)
                last = raw
            failing = False
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # Redis away, or a value this version cannot read
            if not failing:
                log.warning("dashboard snapshot not read from Redis (%s); serving the last one", exc)
            failing = True
        await asyncio.sleep(every)


class KpiChild:
    """The KPI process as a child of a single web process, restarted if it dies.

    Its settings go to it on stdin (not the environment: tests and tools build settings in
    code), and stdin stays open: the child stops when it ends, so it never outlives this
    process. Without Redis its snapshots come back as JSON lines on its stdout."""

    def __init__(self, settings: Settings, collector: DashboardCollector = COLLECTOR) -> None:
        self.settings = settings
        self.collector = collector
        self.proc: asyncio.subprocess.Process | None = None
        self.task: asyncio.Task[None] | None = None
        self.starts = 0

    def start(self) -> None:
        self.task = asyncio.create_task(self._supervise(), name="dashboard-kpi-child")

    async def _supervise(self) -> None:
        backoff = 1.0
        while True:
            started = time.monotonic()
            rc = await self._run_once()
            backoff = 1.0 if time.monotonic() - started > 60 else min(backoff * 2, 60.0)
            log.warning("dashboard KPI process exited with %s; restarting in %.0f s", rc, backoff)
            await asyncio.sleep(backoff)

    async def _run_once(self) -> int | None:
        proc = self.proc = await asyncio.create_subprocess_exec(
            *CHILD_ARGV,
            stdin=asyncio.subprocess.PIPE,
            stdout=asyncio.subprocess.PIPE,
            cwd=ROOT,
            limit=STREAM_LIMIT,
        )
        self.starts += 1
        assert proc.stdin is not None and proc.stdout is not None
        try:
            proc.stdin.write(self.settings.model_dump_json().encode() + b"\n")
            await proc.stdin.drain()
            async for line in proc.stdout:
                try:
                    self.collector.snapshot = loads(line)
                except ValueError as exc:
                    log.warning("dashboard KPI process wrote an unreadable snapshot: %s", exc)
            return await proc.wait()
        finally:
            if proc.returncode is None:
                await self._end(proc)

    @staticmethod
    async def _end(proc: asyncio.subprocess.Process) -> None:
        """Close its stdin (it stops after the pass in flight), then SIGTERM, then SIGKILL."""
        if proc.stdin is not None:
            proc.stdin.close()
        for step in (proc.terminate, proc.kill):
            try:
                await asyncio.wait_for(asyncio.shield(proc.wait()), 5)
                return
            except TimeoutError:
                with contextlib.suppress(ProcessLookupError):
                    step()
        await proc.wait()

    async def stop(self) -> None:
        if self.task is not None:
            self.task.cancel()
            await asyncio.gather(self.task, return_exceptions=True)
        if self.proc is not None and self.proc.returncode is None:
            await self._end(self.proc)


# the single process's KPI child while it runs (absent in the supervisor's web processes)
KPI_CHILD: "web.AppKey[KpiChild]" = web.AppKey("dashboard_kpi_child")


def setup(app: web.Application, settings: Settings) -> None:
    register()

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        role = app.get(PROCESS_ROLE, "both")
        follower: asyncio.Task[None] | None = None
        child: KpiChild | None = None
        if role != "worker":  # the queue worker serves no /metrics
            redis = app[SERVICES].redis
            if redis is not None:
                every = min(15.0, settings.dashboard_refresh_seconds)
                follower = asyncio.create_task(follow_redis(redis, every), name="dashboard-snapshot-follower")
            if role == "both" and settings.dashboard_kpi_child:
                child = app[KPI_CHILD] = KpiChild(settings)
                child.start()
        try:
            yield
        finally:
            if child is not None:
                await child.stop()
            if follower is not None:
                follower.cancel()
                await asyncio.gather(follower, return_exceptions=True)

    app.cleanup_ctx.append(ctx)
