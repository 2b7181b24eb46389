"""The durable outbox on the taskiq queue, with real Redis and PostgreSQL, under faults.

- a provider answering 500 / 429 / stalling / 400: retries with backoff, Retry-After
  honoured, dead letter visible to staff, each message delivered exactly once;
- kill -9 of the queue worker process in the middle of a burst: nothing lost, nothing
  delivered twice (the provider dedups on the row's idempotency key);
- Redis restarted during traffic: clear 503s, rows stored meanwhile are sent afterwards;
- PostgreSQL restarted during traffic: clear 503s, then normal service.
"""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.core.app_keys import SERVICES
from bot.core.messages import Outgoing, Reply
from bot.core.models import OutboxMessage
from bot.core.channel_registry import ChannelRegistry
from bot.core.outbox import OutboxWorker
from bot.queue import OUTBOX_QUEUE, QUEUE_ROLE, OutboxQueue
from bot.core.settings import ROOT
from tests.conftest import make_settings
from tests.fakes.channel_provider import CHANNEL, ENV_URL, Provider, ProviderSender, start_provider
from tests.fixtures_services import RedisServer
from tests.community_helpers import as_member

pytestmark = pytest.mark.services


async def wait_until(pred: Callable[[], Awaitable[bool]], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await pred():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"timed out after {timeout}s waiting for {what}")


@pytest.fixture
async def provider() -> AsyncIterator[tuple[Provider, str]]:
    p = Provider()
    runner, url = await start_provider(p)
    yield p, url
    await runner.cleanup()


def prod_settings(tmp_path: Path, db: str, redis: str, **over: object):  # type: ignore[no-untyped-def]
    values: dict[str, object] = dict(
        database_url=db,
        redis_url=redis,
        outbox_poll_seconds=0.1,
        outbox_backoff_base_seconds=0.2,
        outbox_lease_seconds=2.0,
        outbox_kick_grace_seconds=1.0,
    )
    values.update(over)
    return make_settings(tmp_path, **values)


async def start_client(settings, role: str = "both") -> TestClient:  # type: ignore[no-untyped-def]
    app = create_app(settings, db_setup="schema")
    app[QUEUE_ROLE] = role
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


async def enqueue(client: TestClient, n: int, prefix: str = "u", start: int = 0) -> list[int]:
    outbox = client.app[SERVICES].outbox
    ids = []
    for i in range(start, start + n):
        row = await outbox.enqueue(
            Outgoing(
                channel=CHANNEL,
                address=f"{prefix}{i}",
                reply=Reply(text=f"消息 {i}"),
                purpose="agent",
                idempotency_key=f"test:{prefix}:{i}",
            )
        )
        ids.append(row.id)
    return ids


async def staff_cookie(role: str) -> str:
    from bot.staff.auth import create_staff, start_session

    user = await create_staff(f"{role}1", "correct horse battery", [role])
    token, _ = await start_session(user)
    return token


async def test_provider_faults_retry_backoff_dead_letter_no_duplicates(
    tmp_path: Path, fresh_postgres_url: str, fresh_redis_url: str, provider: tuple[Provider, str]
) -> None:
    prov, url = provider
    prov.script = {"a500": [500, 500], "a429": [429], "stall": ["stall"], "bad": [400]}
    # the stall outlasts the client's timeout by far; the timeout itself leaves every other
    # request ample time even on a loaded machine (a spurious timeout would add an attempt)
    prov.stall_seconds = 3.0
    client = await start_client(prod_settings(tmp_path, fresh_postgres_url, fresh_redis_url))
    try:
        client.app[SERVICES].channels.register(ProviderSender(url, timeout=1.0))
        outbox = client.app[SERVICES].outbox
        rows = {}
        for to in ("a500", "a429", "stall", "bad", "ok"):
            rows[to] = (
                await outbox.enqueue(Outgoing(channel=CHANNEL, address=to, reply=Reply(text=to), purpose="agent"))
            ).id

        async def settled() -> bool:
            return await OutboxMessage.filter(status__in=("sent", "dead")).count() == 5

        await wait_until(settled, 15, "every message sent or dead")
        by_to = {m.address: m for m in await OutboxMessage.all()}
        assert {k: m.status for k, m in by_to.items()} == {
            "a500": "sent",
            "a429": "sent",
            "stall": "sent",
            "bad": "dead",
            "ok": "sent",
        }
        assert by_to["a500"].attempts == 3 and by_to["a429"].attempts == 2 and by_to["ok"].attempts == 1
        assert "invalid recipient" in by_to["bad"].last_error
        # exactly one delivery per sent row, although "stall" arrived twice at the provider
        assert sorted(d["to"] for d in prov.delivered.values()) == ["a429", "a500", "ok", "stall"]
        assert prov.requests[f"outbox-{rows['stall']}"] == 2
        # backoff: 0.2 s then 0.4 s between the a500 attempts; Retry-After: 1 s honoured
        t = prov.request_times["a500"]
        assert t[1] - t[0] >= 0.2 - 0.02 and t[2] - t[1] >= 0.4 - 0.02
        t = prov.request_times["a429"]
        assert t[1] - t[0] >= 1.0 - 0.02

        # the dead letter is visible to staff, not to anonymous callers
        resp = await client.get("/api/v1/admin/outbox?status=dead")
        assert resp.status == 401
        client.session.cookie_jar.update_cookies({"everycsr_staff": await staff_cookie("agent")})
        resp = await client.get("/api/v1/admin/outbox?status=dead")
        assert resp.status == 200
        data = await resp.json()
        assert [m["address"] for m in data["messages"]] == ["bad"]
        assert data["counts"] == {"sent": 4, "dead": 1}
        resp = await client.get("/api/v1/admin/outbox?status=nonsense")
        assert resp.status == 400
        # agents may look, only admins may re-send
        resp = await client.post(f"/api/v1/admin/outbox/{rows['bad']}/retry")
        assert resp.status == 403
    finally:
        await client.close()


async def test_admin_retry_sends_a_dead_letter_again(
    tmp_path: Path, fresh_postgres_url: str, fresh_redis_url: str, provider: tuple[Provider, str]
) -> None:
    prov, url = provider
    prov.script = {"bad": [400]}
    client = await start_client(prod_settings(tmp_path, fresh_postgres_url, fresh_redis_url))
    try:
        client.app[SERVICES].channels.register(ProviderSender(url))
        row = await client.app[SERVICES].outbox.enqueue(
            Outgoing(channel=CHANNEL, address="bad", reply=Reply(text="x"), purpose="agent")
        )

        async def status(s: str) -> bool:
            return (await OutboxMessage.get(id=row.id)).status == s

        await wait_until(lambda: status("dead"), 10, "dead letter")
        from bot.staff.auth import create_staff, start_session

        token, session = await start_session(await create_staff("boss", "correct horse battery", ["admin"]))
        client.session.cookie_jar.update_cookies({"everycsr_staff": token})
        resp = await client.post(f"/api/v1/admin/outbox/{row.id}/retry", headers={"X-CSRF-Token": session.csrf_token})
        assert resp.status == 200, await resp.text()
        await wait_until(lambda: status("sent"), 10, "re-sent dead letter")
        assert len(prov.delivered) == 1
        resp = await client.post(f"/api/v1/admin/outbox/{row.id}/retry", headers={"X-CSRF-Token": session.csrf_token})
        assert resp.status == 404  # only dead, held or stuck rows can be re-sent
    finally:
        await client.close()


def spawn_queue_worker(db: str, redis: str, provider_url: str, log: Path) -> subprocess.Popen[bytes]:
    env = {
        **os.environ,
        "BOT_DATABASE_URL": db,
        "BOT_REDIS_URL": redis,
        ENV_URL: provider_url,
        "BOT_OUTBOX_LEASE_SECONDS": "2",
        "BOT_OUTBOX_POLL_SECONDS": "0.1",
        "BOT_OUTBOX_KICK_GRACE_SECONDS": "1",
        "BOT_OUTBOX_QUEUE_CONCURRENCY": "16",
        "BOT_LOG_LEVEL": "WARNING",
    }
    return subprocess.Popen(
        [sys.executable, "-m", "tests.fakes.channel_provider"],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def test_kill_9_queue_worker_mid_burst_loses_and_duplicates_nothing(
    tmp_path: Path, fresh_postgres_url: str, fresh_redis_url: str, provider: tuple[Provider, str]
) -> None:
    """A queue worker process is killed -9 while sending a burst; another worker takes over."""
    prov, url = provider
    prov.delay = 0.01  # every send is in flight for a while: the kill lands mid-send
    settings = prod_settings(tmp_path, fresh_postgres_url, fresh_redis_url)
    client = await start_client(settings, role="web")
    log = tmp_path / "worker.log"
    victim = spawn_queue_worker(fresh_postgres_url, fresh_redis_url, url, log)
    survivor = None
    try:
        ids = await enqueue(client, 400)
        await wait_until(
            lambda: _ready(prov.by_pid[str(victim.pid)] >= 20),
            60,
            f"the victim worker to send (log: {log.read_text()[-1500:]})",
        )
        victim.send_signal(signal.SIGKILL)
        victim.wait(5)
        assert len(prov.delivered) < 400, "the burst finished before the kill; make it longer"
        in_flight = await OutboxMessage.filter(status="sending").count()
        assert in_flight >= 1  # rows the victim held mid-send
        more = await enqueue(client, 50, start=400)  # traffic goes on while no worker runs
        # a second queue worker (here: in this process, same production code)
        services = client.app[SERVICES]
        registry = ChannelRegistry()
        registry.register(ProviderSender(url))
        survivor = OutboxQueue(settings, OutboxWorker(settings, services.outbox, registry, services.limiter))
        await survivor.start("worker")

        async def all_sent() -> bool:
            return await OutboxMessage.filter(status="sent").count() == 450

        await wait_until(all_sent, 30, "all 450 sent")
        keys = {f"outbox-{i}" for i in ids + more}
        assert set(prov.delivered) == keys  # nothing lost
        assert len(prov.delivered) == 450  # nothing delivered twice
        # ...because the provider takes the row's key: the repeats it absorbed are the rows
        # the victim held mid-send, sent again after their lease, and no others
        repeats = {k: n for k, n in prov.accepted.items() if n > 1}
        assert sum(n - 1 for n in repeats.values()) <= in_flight
        assert await OutboxMessage.exclude(status="sent").count() == 0
        assert survivor.stats["reclaimed"] >= in_flight  # taken back after their lease
    finally:
        if victim.poll() is None:
            victim.kill()
            victim.wait(10)
        if survivor:
            await survivor.stop()
        await client.close()


async def _ready(value: bool) -> bool:
    return value


async def test_redis_restart_during_traffic_degrades_then_recovers(
    tmp_path: Path, fresh_postgres_url: str, provider: tuple[Provider, str]
) -> None:
    prov, url = provider
    server = RedisServer()
    server.start()
    client = await start_client(prod_settings(tmp_path, fresh_postgres_url, server.url))
    try:
        client.app[SERVICES].channels.register(ProviderSender(url))
        resp = await client.post("/api/v1/chat", json={**as_member("r1"), "text": "你好", "msg_id": "m1"})
        assert resp.status == 200
        await enqueue(client, 5)
        await wait_until(lambda: _ready(len(prov.delivered) == 5), 10, "first batch sent")

        server.stop()
        resp = await client.post("/api/v1/chat", json={**as_member("r1"), "text": "你好", "msg_id": "m2"})
        assert resp.status == 503
        body = await resp.json()
        assert body == {"error": "service temporarily unavailable, please retry shortly"}
        assert "Traceback" not in await resp.text()
        # what staff and handlers store meanwhile is kept in PostgreSQL
        stored = await enqueue(client, 5, start=5)
        assert len(stored) == 5 and client.app[OUTBOX_QUEUE].stats["kick_errors"] >= 5

        server.start()

        async def chat_ok() -> bool:
            r = await client.post("/api/v1/chat", json={**as_member("r1"), "text": "你好", "msg_id": "m2"})
            return r.status == 200

        await wait_until(chat_ok, 10, "chat to answer again after the Redis restart")
        await wait_until(lambda: _ready(len(prov.delivered) == 10), 15, "messages stored during the outage sent")
        assert len(prov.delivered) == 10
    finally:
        await client.close()
        server.cleanup()


async def test_postgres_restart_during_traffic_degrades_then_recovers(
    tmp_path: Path,
    postgres_cluster,
    fresh_postgres_url: str,
    fresh_redis_url: str,  # type: ignore[no-untyped-def]
) -> None:
    client = await start_client(prod_settings(tmp_path, fresh_postgres_url, fresh_redis_url))
    try:
        resp = await client.post("/api/v1/chat", json={**as_member("p1"), "text": "你好", "msg_id": "p1"})
        assert resp.status == 200
        await asyncio.to_thread(postgres_cluster.stop)
        try:
            resp = await client.post("/api/v1/chat", json={**as_member("p1"), "text": "你好", "msg_id": "p2"})
            assert resp.status == 503
            assert (await resp.json())["error"].startswith("service temporarily unavailable")
            health = await client.get("/healthz")
            assert health.status == 503
        finally:
            await asyncio.to_thread(postgres_cluster.start)

        async def chat_ok() -> bool:
            r = await client.post("/api/v1/chat", json={**as_member("p1"), "text": "你好", "msg_id": "p2"})
            return r.status == 200

        await wait_until(chat_ok, 15, "chat to answer again after the PostgreSQL restart")
        from bot.core.models import TranscriptEntry

        # the retried message was processed exactly once
        assert await TranscriptEntry.filter(msg_id="p1#p2", direction="in").count() == 1
    finally:
        await client.close()
