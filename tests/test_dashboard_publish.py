"""The /metrics KPI pass runs in one process of the deployment, never in a web process.

- the snapshot's JSON round trip (property);
- a web process runs no pass: no transcript load, no child, only a follower;
- the computing process publishes and a web process's /metrics serves it: through real Redis
  (``python -m bot.workers dashboard`` beside a web-role app) and in the embedded single
  process (SQLite, no Redis: the app's own child, over its stdout);
- the lease: one computer at a time, a pass longer than the TTL keeps it, a dead holder is
  replaced after the TTL, a lapsed holder cannot publish;
- a failed pass keeps the last published figures (and their age).
"""

from __future__ import annotations

import asyncio
import contextlib
import io
import os
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry, generate_latest

from bot.app import create_app
from bot.core.app_keys import PROCESS_ROLE
from bot.core.redis_stores import make_redis
from bot.core.settings import ROOT, Settings
from bot.dashboard import data, prom
from bot.dashboard.prom import KPI_CHILD, DashboardCollector, follow_redis
from bot.dashboard.publisher import (
    LEASE_KEY,
    SNAPSHOT_KEY,
    LocalLease,
    Publisher,
    RedisLease,
    RedisSink,
    StreamSink,
)
from bot.dashboard.snapshot import Snapshot, dumps, loads
from bot.workers import build_children
from tests.conftest import load_sample_kb, make_settings
from tests.test_dashboard_web import traffic

FIGURE = 'everycsr_kpi_self_service_share{channel="web"} 0.6666'  # what traffic() gives


@pytest.fixture(autouse=True)
def fresh_collector() -> None:
    """The collector is per process: start every test from no figures."""
    prom.COLLECTOR.snapshot = Snapshot()


@pytest.fixture
def no_pass_here(monkeypatch: pytest.MonkeyPatch) -> list[object]:
    """Fails the test process's transcript load: a figure that shows up was computed elsewhere."""
    calls: list[object] = []

    async def load_events(*args: object) -> list[object]:
        calls.append(args)
        raise AssertionError("the KPI pass ran in the web process")

    monkeypatch.setattr(data, "load_events", load_events)
    return calls


@contextlib.asynccontextmanager
async def app_client(settings: Settings, role: str | None = None) -> AsyncIterator[TestClient]:
    app = create_app(settings, db_setup="schema")
    if role is not None:
        app[PROCESS_ROLE] = role
    async with TestClient(TestServer(app)) as client:
        await load_sample_kb(app)
        yield client


async def metrics_until(client: TestClient, needle: str, timeout: float = 60.0) -> str:
    deadline = time.monotonic() + timeout
    while True:
        body = await (await client.get("/metrics")).text()
        if needle in body:
            return body
        assert time.monotonic() < deadline, f"{needle!r} not served after {timeout} s"
        await asyncio.sleep(0.2)


def kpi_children() -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=,args=", "--ppid", str(os.getpid())], capture_output=True, text=True)
    return [int(line.split()[0]) for line in out.stdout.splitlines() if "bot.workers dashboard" in line]


# --- the snapshot's JSON -----------------------------------------------------------------------
names = st.text(min_size=1, max_size=12)
ratios = st.floats(min_value=0, max_value=1, allow_nan=False)
counts = st.integers(min_value=0, max_value=2**53)
snapshots = st.builds(
    Snapshot,
    at=st.floats(min_value=0, max_value=4e9, allow_nan=False),
    kpis=st.dictionaries(names, st.dictionaries(names, ratios, max_size=4), max_size=4),
    funnel=st.dictionaries(names, st.tuples(counts, st.none() | ratios), max_size=5),
    sla=st.dictionaries(names, ratios, max_size=4),
    unanswered=counts,
    points=st.none() | st.tuples(counts, counts),
    offers=st.dictionaries(st.integers(1, 10**6).map(str), st.tuples(counts, counts, counts), max_size=6),
)


@given(snapshots)
def test_snapshot_json_round_trip(snap: Snapshot) -> None:
    assert loads(dumps(snap)) == snap
    assert loads(dumps(snap).encode()) == snap  # as Redis and the pipe hand it back


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{not json",
        b"[]",
        b'{"v": 2}',
        dumps(Snapshot()).replace('"unanswered":0', '"unanswered":"0"').encode(),
        dumps(Snapshot(points=(1, 2))).replace("[1,2]", "[1]").encode(),
        dumps(Snapshot()).replace('"at":0.0', '"at":NaN').encode(),
        dumps(Snapshot()).replace(',"sla":{}', "").encode(),
    ],
)
def test_anything_else_is_a_value_error(raw: bytes) -> None:
    with pytest.raises(ValueError):
        loads(raw)


# --- where the pass runs -------------------------------------------------------------------------
async def test_a_web_process_runs_no_kpi_pass(tmp_path: Path, no_pass_here: list[object]) -> None:
    """A supervisor's web process (role ``web``): no transcript load, no KPI child, no task but
    (with Redis) the follower, however short the refresh period."""
    settings = make_settings(tmp_path, dashboard_kpi_child=True, dashboard_refresh_seconds=0.05)
    async with app_client(settings, role="web") as client:
        await traffic(client)
        await asyncio.sleep(0.5)
        assert KPI_CHILD not in client.app
        assert not [t for t in asyncio.all_tasks() if "dashboard" in t.get_name()]
        assert kpi_children() == []
        body = await (await client.get("/metrics")).text()
        assert "everycsr_dashboard_refreshed_timestamp_seconds 0.0" in body  # nothing published: age unknown
    assert no_pass_here == []


def test_the_supervisor_runs_one_kpi_process(tmp_path: Path) -> None:
    s = make_settings(tmp_path, redis_url="redis://127.0.0.1:1/0", dashboard_kpi_child=True)
    names = [c.name for c in build_children(s, 3)]
    assert names.count("dashboard") == 1 and names.count("outbox-queue") == 1
    kpi = next(c for c in build_children(s, 3) if c.name == "dashboard")
    assert kpi.argv[1:] == ["-m", "bot.workers", "dashboard"]
    off = make_settings(tmp_path, redis_url="redis://127.0.0.1:1/0", dashboard_kpi_child=False)
    assert "dashboard" not in [c.name for c in build_children(off, 3)]


async def test_single_process_sqlite_serves_its_childs_figures(tmp_path: Path, no_pass_here: list[object]) -> None:
    """``make demo``'s mode: SQLite, no Redis, one process. The KPI pass runs in the app's child
    process, the figures come back on its stdout; the child ends with the app."""
    settings = make_settings(tmp_path, dashboard_kpi_child=True, dashboard_refresh_seconds=0.3)
    async with app_client(settings) as client:
        child = client.app[KPI_CHILD]
        await traffic(client)
        body = await metrics_until(client, FIGURE)
        assert 'everycsr_kpi_answer_accuracy{channel="all"} 0.5' in body
        assert "everycsr_unanswered_questions 1.0" in body
        assert time.time() - prom.COLLECTOR.snapshot.at < 30
        assert child.proc is not None and child.proc.pid in kpi_children()
    assert child.proc.returncode is not None and kpi_children() == []
    assert no_pass_here == []


@pytest.mark.services
async def test_kpi_process_publishes_through_redis_to_a_web_process(
    tmp_path: Path, fresh_redis_url: str, no_pass_here: list[object]
) -> None:
    """``python -m bot.workers dashboard`` (the supervisor's child) computes and publishes in
    Redis; a web process (role ``web``) serves it in /metrics."""
    settings = make_settings(tmp_path, redis_url=fresh_redis_url, dashboard_refresh_seconds=0.5)
    async with app_client(settings, role="web") as client:
        await traffic(client)
        log = (tmp_path / "kpi.log").open("wb")
        env = {
            **os.environ,
            "BOT_DATABASE_URL": settings.database_url,
            "BOT_REDIS_URL": fresh_redis_url,
            "BOT_DASHBOARD_REFRESH_SECONDS": "0.5",
        }
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.workers", "dashboard"], cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT
        )
        try:
            body = await metrics_until(client, FIGURE)
            assert "everycsr_unanswered_questions 1.0" in body
            redis = make_redis(fresh_redis_url)
            try:
                published = loads(await redis.get(SNAPSHOT_KEY))
                assert await redis.get(LEASE_KEY) is not None  # held while it runs
            finally:
                await redis.aclose()
            assert published.kpis["self_service"]["web"] == prom.COLLECTOR.snapshot.kpis["self_service"]["web"]
        finally:
            proc.terminate()
            assert proc.wait(30) == 0, (tmp_path / "kpi.log").read_text()[-2000:]
            log.close()
        redis = make_redis(fresh_redis_url)
        try:
            assert await redis.get(LEASE_KEY) is None  # released on a clean stop: a standby need not wait
        finally:
            await redis.aclose()
    assert no_pass_here == []


# --- the lease -----------------------------------------------------------------------------------
def counting(name: str, seen: list[str], state: dict[str, int], seconds: float = 0.05) -> Callable[..., object]:
    async def compute(settings: Settings) -> Snapshot:
        state["running"] += 1
        state["peak"] = max(state["peak"], state["running"])
        seen.append(name)
        try:
            await asyncio.sleep(seconds)
        finally:
            state["running"] -= 1
        return Snapshot(at=time.time(), unanswered=len(seen), sla={"who": 1.0 if name == "a" else 0.0})

    return compute


async def until(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline
        await asyncio.sleep(0.01)


@pytest.mark.services
async def test_a_lease_lets_one_process_compute_at_a_time(tmp_path: Path, fresh_redis_url: str) -> None:
    settings = make_settings(tmp_path)
    redis = make_redis(fresh_redis_url)
    seen: list[str] = []
    state = {"running": 0, "peak": 0}

    def publisher(name: str) -> Publisher:
        return Publisher(
            settings,
            RedisSink(redis),
            RedisLease(redis, 5.0),
            every=0.02,
            compute=counting(name, seen, state),  # type: ignore[arg-type]
        )

    a, b = publisher("a"), publisher("b")
    stop_a, stop_b = asyncio.Event(), asyncio.Event()
    try:
        run_a = asyncio.create_task(a.run(stop_a))
        await until(lambda: bool(seen))
        run_b = asyncio.create_task(b.run(stop_b))
        await asyncio.sleep(0.6)
        assert set(seen) == {"a"} and len(seen) >= 5 and state["peak"] == 1
        stop_a.set()  # a clean stop releases the lease: b takes over at its next try
        await run_a
        await until(lambda: "b" in seen, timeout=2)
        await until(lambda: b.published is not None)
        assert state["peak"] == 1
        assert loads(await redis.get(SNAPSHOT_KEY)).sla == {"who": 0.0}
        stop_b.set()
        await run_b
    finally:
        await redis.aclose()


@pytest.mark.services
async def test_the_lease_outlives_a_long_pass_and_a_dead_holder_is_replaced(
    tmp_path: Path, fresh_redis_url: str
) -> None:
    settings = make_settings(tmp_path)
    redis = make_redis(fresh_redis_url)
    seen: list[str] = []
    state = {"running": 0, "peak": 0}
    TTL = 1.0  # renewed every third of it: a loaded test machine still renews in time
    try:
        slow = Publisher(
            settings,
            RedisSink(redis),
            RedisLease(redis, TTL),
            compute=counting("a", seen, state, seconds=3 * TTL),  # type: ignore[arg-type]
        )
        other = Publisher(
            settings,
            RedisSink(redis),
            RedisLease(redis, TTL),
            compute=counting("b", seen, state),  # type: ignore[arg-type]
        )
        pass_a = asyncio.create_task(slow.run_once())
        await until(lambda: bool(seen))
        for _ in range(10):  # three TTLs while a computes: renewed, so b never gets it
            assert await other.run_once() is None
            await asyncio.sleep(0.25)
        assert (await pass_a) is not None and seen == ["a"]
        # a dies without releasing (kill -9): b waits out the TTL, then computes
        assert await other.run_once() is None
        await asyncio.sleep(TTL + 0.2)
        assert await other.run_once() is not None and seen == ["a", "b"]
        # a's lease has lapsed and is b's now: a's late result is not published
        assert not await RedisSink(redis).publish(Snapshot(at=1.0), slow.lease)
        assert loads(await redis.get(SNAPSHOT_KEY)).sla == {"who": 0.0}
        assert state["peak"] == 1
    finally:
        await redis.aclose()


# --- a failed pass -------------------------------------------------------------------------------
def flaky(*results: Snapshot | Exception) -> Callable[..., object]:
    queue = list(results)

    async def compute(settings: Settings) -> Snapshot:
        r = queue.pop(0)
        if isinstance(r, Exception):
            raise r
        return r

    return compute


def exposition(collector: DashboardCollector) -> str:
    registry = CollectorRegistry()
    registry.register(collector)
    return generate_latest(registry).decode()


@pytest.mark.services
async def test_a_failed_pass_keeps_the_last_published_figures(tmp_path: Path, fresh_redis_url: str) -> None:
    first = Snapshot(at=1_000.0, unanswered=3, kpis={"accuracy": {"all": 0.75}})
    redis = make_redis(fresh_redis_url)
    collector = DashboardCollector()
    follower = asyncio.create_task(follow_redis(redis, 0.01, collector))
    try:
        p = Publisher(
            make_settings(tmp_path),
            RedisSink(redis),
            RedisLease(redis, 30.0),
            compute=flaky(first, RuntimeError("database gone")),  # type: ignore[arg-type]
        )
        assert await p.run_once() == first
        assert await p.run_once() is None  # logged, nothing published
        assert loads(await redis.get(SNAPSHOT_KEY)) == first
        await until(lambda: collector.snapshot == first)
        await redis.set(SNAPSHOT_KEY, b"{half a snapsh")  # an unreadable value: kept too
        await asyncio.sleep(0.1)
        assert collector.snapshot == first
        body = exposition(collector)
        assert "everycsr_dashboard_refreshed_timestamp_seconds 1000.0" in body  # the figures' age
        assert "everycsr_unanswered_questions 3.0" in body
        assert 'everycsr_kpi_answer_accuracy{channel="all"} 0.75' in body
    finally:
        follower.cancel()
        done, _ = await asyncio.wait({follower}, timeout=5)
        assert done, "the follower did not stop when cancelled"
        await redis.aclose()


async def test_a_failed_pass_writes_nothing_to_the_parent(tmp_path: Path) -> None:
    """The embedded mode's pipe: one line per published pass, none for a failed one."""
    out = io.StringIO()
    first = Snapshot(at=5.0, unanswered=1)
    p = Publisher(
        make_settings(tmp_path),
        StreamSink(out),
        LocalLease(),
        compute=flaky(first, RuntimeError("boom"), Snapshot(at=6.0)),  # type: ignore[arg-type]
    )
    assert await p.run_once() == first and await p.run_once() is None and p.published == first
    assert (await p.run_once()) == Snapshot(at=6.0)
    assert [loads(line) for line in out.getvalue().splitlines()] == [first, Snapshot(at=6.0)]
