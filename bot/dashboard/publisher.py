"""The KPI pass for /metrics, in one process of the deployment: ``python -m bot.workers dashboard``.

The pass reads a trailing week of transcript into memory and computes the dashboard report
(seconds of CPU and a working set that grows with the data), so it never runs in a web
process. One process computes it every ``BOT_DASHBOARD_REFRESH_SECONDS`` and publishes the
:class:`~bot.dashboard.snapshot.Snapshot`; web processes only serve the latest one
(``bot/dashboard/prom.py``).

- With Redis (production): the snapshot is the JSON at ``everycsr:dashboard:snapshot``. A
  lease (``everycsr:dashboard:lease``, an owner token with a TTL renewed while the holder
  lives) lets one candidate compute at a time; the publish is fenced by it (a holder whose
  lease lapsed mid-pass publishes nothing). The supervisor starts this process as a child of
  its own; a single ``python -m bot run`` starts it as its child; several of either share the
  lease.
- Without Redis (the embedded mode: one process, SQLite): the web process starts this as its
  child and reads the snapshots as JSON lines on the child's stdout (``--settings-stdin``: the
  parent's settings arrive on stdin, and stdin's end means the parent is gone).

A failed pass publishes nothing: the last published figures stay, and
``everycsr_dashboard_refreshed_timestamp_seconds`` shows their age.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
import sys
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import IO, Protocol

from redis.asyncio import Redis

from bot.core import storage
from bot.core.redis_stores import PREFIX, make_redis
from bot.core.settings import Settings
from bot.dashboard.reports import Query, build_report, offer_rows
from bot.dashboard.snapshot import Snapshot, dumps

log = logging.getLogger(__name__)

WINDOW_DAYS = 7  # the gauges cover the trailing week
SNAPSHOT_KEY = PREFIX + "dashboard:snapshot"
LEASE_KEY = PREFIX + "dashboard:lease"

RENEW_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('PEXPIRE', KEYS[1], ARGV[2]) end
return 0
"""
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# the publish is fenced by the lease: only its holder's snapshot is written
PUBLISH_LUA = """
if redis.call('GET', KEYS[1]) == ARGV[1] then redis.call('SET', KEYS[2], ARGV[2]) return 1 end
return 0
"""


async def compute(settings: Settings, now: datetime | None = None) -> Snapshot:
    """The trailing week's figures (the dashboard's own report, ``bot/dashboard/reports.py``)."""
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
    return snap


# --- who computes: the lease --------------------------------------------------------------------
class Lease(Protocol):
    token: str

    async def acquire(self) -> bool:
        """Take the lease if free, renew it if this holder's; False: another holds it."""

    async def release(self) -> None: ...

    def kept(self) -> contextlib.AbstractAsyncContextManager[None]:
        """Keep renewing the lease while the body runs (a pass may outlast the TTL)."""


class LocalLease:
    """The embedded mode: the web process starts one child, so there is no one to share with."""

    token = "local"

    async def acquire(self) -> bool:
        return True

    async def release(self) -> None:
        return None

    @contextlib.asynccontextmanager
    async def kept(self) -> AsyncIterator[None]:
        yield


class RedisLease:
    """An owner token under ``key`` with a TTL; renewed and released only by its owner."""

    def __init__(self, redis: Redis, ttl_seconds: float, key: str = LEASE_KEY) -> None:
        self.redis = redis
        self.key = key
        self.ttl_ms = max(1, int(ttl_seconds * 1000))
        self.token = uuid.uuid4().hex
        self._renew = redis.register_script(RENEW_LUA)
        self._release = redis.register_script(RELEASE_LUA)

    async def acquire(self) -> bool:
        if await self.redis.set(self.key, self.token, nx=True, px=self.ttl_ms):
            return True
        return bool(await self._renew(keys=[self.key], args=[self.token, self.ttl_ms]))

    async def release(self) -> None:
        with contextlib.suppress(Exception):  # a lapsed lease needs no release
            await self._release(keys=[self.key], args=[self.token])

    @contextlib.asynccontextmanager
    async def kept(self) -> AsyncIterator[None]:
        async def renew() -> None:
            while True:
                await asyncio.sleep(self.ttl_ms / 3000)
                try:
                    if not await self._renew(keys=[self.key], args=[self.token, self.ttl_ms]):
                        log.warning("dashboard KPI lease lost during a pass; its result will not be published")
                        return
                except Exception as exc:  # Redis away: the fenced publish decides
                    log.warning("dashboard KPI lease not renewed: %s", exc)

        task = asyncio.create_task(renew(), name="dashboard-lease-renewal")
        try:
            yield
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


# --- where the snapshot goes ----------------------------------------------------------------------
class Sink(Protocol):
    async def publish(self, snap: Snapshot, lease: Lease) -> bool:
        """Publish ``snap`` if ``lease`` is still held; True when published."""


class RedisSink:
    """The snapshot's JSON under ``everycsr:dashboard:snapshot`` (no TTL: its ``at`` says its age)."""

    def __init__(self, redis: Redis, key: str = SNAPSHOT_KEY, lease_key: str = LEASE_KEY) -> None:
        self.redis = redis
        self.key = key
        self.lease_key = lease_key
        self._publish = redis.register_script(PUBLISH_LUA)

    async def publish(self, snap: Snapshot, lease: Lease) -> bool:
        return bool(await self._publish(keys=[self.lease_key, self.key], args=[lease.token, dumps(snap)]))


class StreamSink:
    """One JSON line per snapshot on a stream: the embedded mode's pipe to the web process."""

    def __init__(self, stream: IO[str]) -> None:
        self.stream = stream

    async def publish(self, snap: Snapshot, lease: Lease) -> bool:
        self.stream.write(dumps(snap) + "\n")
        self.stream.flush()
        return True


# --- the loop -----------------------------------------------------------------------------------
class Publisher:
    """Every ``every`` seconds: take (or keep) the lease, compute, publish."""

    def __init__(
        self,
        settings: Settings,
        sink: Sink,
        lease: Lease,
        *,
        every: float | None = None,
        compute: Callable[[Settings], Awaitable[Snapshot]] = compute,
    ) -> None:
        self.settings = settings
        self.sink = sink
        self.lease = lease
        self.every = settings.dashboard_refresh_seconds if every is None else every
        self.compute = compute
        self.published: Snapshot | None = None  # the last snapshot this process published
        self.standby = False  # another process held the lease at the last try

    async def run_once(self) -> Snapshot | None:
        """One pass if this process holds the lease; the published snapshot, or None (another
        process holds the lease, the pass failed, or the lease was lost before publishing)."""
        try:
            if not await self.lease.acquire():
                if not self.standby:
                    log.info("dashboard KPIs: another process holds the lease; standing by")
                self.standby = True
                return None
            self.standby = False
            async with self.lease.kept():
                snap = await self.compute(self.settings)
            if not await self.sink.publish(snap, self.lease):
                log.warning("dashboard KPI lease lost before publishing; this pass is dropped")
                return None
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("dashboard KPI pass failed; the last published figures stay")
            return None
        self.published = snap
        return snap

    async def run(self, stop: asyncio.Event) -> None:
        try:
            while not stop.is_set():
                await self.run_once()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), self.every)
        finally:
            await self.lease.release()  # a standby takes over at its next try, not after the TTL


def lease_seconds(settings: Settings) -> float:
    """Long enough to cover the wait between passes; a dead holder is replaced after it."""
    return max(30.0, 3 * settings.dashboard_refresh_seconds)


async def run_publisher(settings: Settings, stop: asyncio.Event, out: IO[str] | None = None) -> None:
    """The computing process: the database (a replica if ``BOT_DASHBOARD_DATABASE_URL``), then
    the loop until ``stop``."""
    await storage.open_db(settings.dashboard_database_url or settings.database_url)
    redis = make_redis(settings.redis_url) if settings.redis_url else None
    try:
        if redis is not None:
            publisher = Publisher(settings, RedisSink(redis), RedisLease(redis, lease_seconds(settings)))
        else:
            publisher = Publisher(settings, StreamSink(out or sys.stdout), LocalLease())
        log.info("dashboard KPI process started: every %.0f s", publisher.every)
        await publisher.run(stop)
    finally:
        if redis is not None:
            await redis.aclose()
        await storage.close_db()


async def _stdin_closed(stop: asyncio.Event) -> None:
    """Set ``stop`` when stdin ends: the parent web process is gone (or stopping us)."""
    loop = asyncio.get_running_loop()
    reader = asyncio.StreamReader()
    await loop.connect_read_pipe(lambda: asyncio.StreamReaderProtocol(reader), sys.stdin)
    while await reader.read(4096):
        pass
    stop.set()


def serve(settings: Settings, *, parent: bool = False) -> None:
    """``python -m bot.workers dashboard``: until SIGTERM/SIGINT (or, ``parent``, stdin's end)."""

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        loop.add_signal_handler(signal.SIGTERM, stop.set)
        if parent:  # Ctrl+C reaches the whole group: the parent ends us by closing stdin
            signal.signal(signal.SIGINT, signal.SIG_IGN)
        else:
            loop.add_signal_handler(signal.SIGINT, stop.set)
        watch = asyncio.create_task(_stdin_closed(stop)) if parent else None
        work = asyncio.create_task(run_publisher(settings, stop))
        stopped = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({work, stopped}, return_when=asyncio.FIRST_COMPLETED)
            work.cancel()  # a pass in flight is dropped: nothing half-done is published
            await asyncio.gather(work, return_exceptions=True)
            if not work.cancelled():
                work.result()  # the start failed (database URL, ...): exit non-zero, logged
        finally:
            for task in (watch, stopped):
                if task is not None:
                    task.cancel()
                    await asyncio.gather(task, return_exceptions=True)

    if not settings.redis_url and not parent:
        log.warning("BOT_REDIS_URL is not set: snapshots go to stdout (the single process starts its own)")
    asyncio.run(main())


def settings_from_parent(line: str) -> Settings:
    """The parent's settings as sent on stdin (``Settings.model_dump_json``); explicit values
    win over the environment."""
    return Settings(_env_file=None, **json.loads(line))  # type: ignore[call-arg]


async def once(settings: Settings) -> Snapshot:
    """One pass, printed (``python -m bot.workers dashboard --once``): for an operator's look."""
    await storage.open_db(settings.dashboard_database_url or settings.database_url)
    try:
        return await compute(settings)
    finally:
        await storage.close_db()
