"""Contract tests: the in-process stores and the Redis stores behave the same.

Every test runs twice, ``memory`` and ``redis`` (a real redis-server on loopback, see
tests/fixtures_services.py). The rate-limiter test uses two limiter instances on two
connections, as two workers would.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from bot.core.fanout import QUEUE_SIZE, MemoryFanout, RedisFanout
from bot.core.redis_stores import RedisDedupStore, RedisRateLimiter, RedisStateStore, make_redis
from bot.core.stores import MemoryDedupStore, MemoryRateLimiter, MemoryStateStore


@dataclass
class Backend:
    name: str
    dedup: Any
    state: Any
    limiter: Any
    second_limiter: Any  # another "worker"'s limiter on the same shared state
    fanout: Any
    second_fanout: Any


@pytest.fixture(params=["memory", "redis"])
async def backend(request: pytest.FixtureRequest) -> AsyncIterator[Backend]:
    if request.param == "memory":
        limiter, fanout = MemoryRateLimiter(), MemoryFanout()
        yield Backend("memory", MemoryDedupStore(), MemoryStateStore(), limiter, limiter, fanout, fanout)
        return
    url = request.getfixturevalue("fresh_redis_url")
    r1, r2 = make_redis(url), make_redis(url)
    f1, f2 = RedisFanout(r1), RedisFanout(r2)
    yield Backend("redis", RedisDedupStore(r1), RedisStateStore(r1), RedisRateLimiter(r1), RedisRateLimiter(r2), f1, f2)
    await f1.close()
    await f2.close()
    await r1.aclose()
    await r2.aclose()


async def test_state_round_trip_delete_and_expiry(backend: Backend) -> None:
    s = backend.state
    assert await s.get("member:1") == {}
    value = {"choices": ["kb:1", "kb:2"], "await": "post", "名字": "张三"}
    await s.set("member:1", value, 60)
    assert await s.get("member:1") == value
    await s.set("member:1", {"a": 1}, 60)
    assert await s.get("member:1") == {"a": 1}
    await s.delete("member:1")
    assert await s.get("member:1") == {}
    await s.set("member:2", {"b": 2}, 1)
    await asyncio.sleep(1.1)
    assert await s.get("member:2") == {}


async def reserve_timed(limiter: Any, key: str, rate: float, burst: float, n: int) -> tuple[list[float], list[float]]:
    """``n`` reservations one after the other: the delays, and for each one the time
    elapsed since the first reservation started (measured after it returned)."""
    t0 = time.monotonic()
    delays, elapsed = [], []
    for _ in range(n):
        delays.append(await limiter.reserve(key, rate, burst))
        elapsed.append(time.monotonic() - t0)
    return delays, elapsed


async def test_rate_limiter_spaces_reservations(backend: Backend) -> None:
    delays, elapsed = await reserve_timed(backend.limiter, "rate:tg", 10.0, 1, 5)
    # slot k is k/10 s after the first one, i.e. k/10 s away minus the time spent reserving
    # since (measured, not guessed: a loaded machine can take long between two calls)
    for k, d in enumerate(delays):
        assert k * 0.1 - elapsed[k] - 0.01 <= d <= k * 0.1 + 0.01, (k, d, elapsed[k])


async def test_rate_limiter_burst(backend: Backend) -> None:
    delays, elapsed = await reserve_timed(backend.limiter, "rate:burst", 5.0, 3, 5)
    assert delays[:3] == [0.0, 0.0, 0.0]
    assert 0.2 - elapsed[3] - 0.01 <= delays[3] <= 0.21, (delays, elapsed)
    assert 0.4 - elapsed[4] - 0.01 <= delays[4] <= 0.41, (delays, elapsed)


async def test_rate_limit_holds_across_two_limiters(backend: Backend) -> None:
    """Two workers reserving on one key share one budget: 40 reservations at 2/s reach
    19.5 s ahead (nothing waits here: the delays are only handed out). A slow rate, so
    that slots stay far apart compared with how long the 40 concurrent calls take."""
    a, b = backend.limiter, backend.second_limiter
    t0 = time.monotonic()
    delays = await asyncio.gather(*[(a if i % 2 else b).reserve("rate:telegram", 2.0, 1) for i in range(40)])
    # every reservation was made within ``spread`` of every other one (on a loaded machine
    # the Redis calls alone can take a good part of a second): two slots k intervals apart
    # give delays that differ by at least k/2 s minus that spread
    spread = time.monotonic() - t0
    delays = sorted(delays)
    assert delays[0] == 0.0
    # not 19/2, as two independent buckets would give
    assert delays[-1] >= 39 / 2 - spread - 0.01, (delays[-1], spread)
    gaps = [y - x for x, y in zip(delays, delays[1:])]
    assert min(gaps) >= 0.5 - spread - 0.01, (min(gaps), spread)  # every slot is 1/2 s after the previous one
    # per-chat buckets are independent of the global one
    assert await a.reserve("rate:telegram:chat1", 1.0, 1) == 0.0


async def test_rate_limiter_rejects_nonsense(backend: Backend) -> None:
    with pytest.raises((ValueError, ZeroDivisionError)):
        await backend.limiter.reserve("rate:bad", 0.0, 1)


async def test_fanout_reaches_subscribers_on_every_worker(backend: Backend) -> None:
    async with (
        backend.fanout.subscribe("inbox") as s1,
        backend.second_fanout.subscribe("inbox") as s2,
        backend.fanout.subscribe("other") as s3,
    ):
        await backend.second_fanout.publish("inbox", {"ticket": 7, "text": "新消息"})
        await backend.fanout.publish("inbox", {"ticket": 8})
        for sub in (s1, s2):
            assert await sub.get(2) == {"ticket": 7, "text": "新消息"}
            assert await sub.get(2) == {"ticket": 8}
        assert await s3.get(0.1) is None
    # after unsubscribing nothing is queued for the closed subscription
    await backend.fanout.publish("inbox", {"ticket": 9})
    assert s1.queue.empty()


async def test_fanout_async_for_and_slow_consumer(backend: Backend) -> None:
    sub = backend.fanout.subscribe("t")
    await sub.start()
    for i in range(300):
        await backend.fanout.publish("t", {"i": i})
    # Redis delivers from a listener task: read only once all 300 have arrived, so the
    # reader cannot drain the queue while it is still filling
    for _ in range(500):
        if sub.delivered == 300:
            break
        await asyncio.sleep(0.01)
    assert sub.delivered == 300
    got: list[int] = []

    async def read() -> None:
        async for event in sub:
            got.append(event["i"])
            if event["i"] == 299:
                return

    await asyncio.wait_for(read(), 5)
    await sub.close()
    # bounded: the 44 oldest were dropped and counted, the publisher never blocked
    assert got == list(range(300 - QUEUE_SIZE, 300))
    assert sub.dropped == 300 - QUEUE_SIZE


async def test_an_event_published_right_after_subscribing_is_received(backend: Backend) -> None:
    """``async with subscribe()`` returns only once subscribed: another worker's publish
    made at once afterwards is delivered (Redis confirms the SUBSCRIBE first)."""
    for i in range(20):
        async with backend.fanout.subscribe(f"fresh-{i}") as sub:
            await backend.second_fanout.publish(f"fresh-{i}", {"i": i})
            event = await sub.get(5)
            assert event == {"i": i}
