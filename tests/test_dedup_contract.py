"""Contract tests of the dedup store: the in-process and the Redis store obey one set of rules.

Every test runs against ``memory`` and ``redis`` (a real redis-server on loopback, see
tests/fixtures_services.py). ``other`` is a second worker's store on its own connection
(for memory: the same store, as there is one process).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import pytest

from bot.core.redis_stores import RedisDedupStore, make_redis
from bot.core.stores import MemoryDedupStore

LEASE = 0.3
TTL = 60


@dataclass
class Stores:
    name: str
    dedup: Any
    other: Any
    flush: Any  # forget every key (a Redis restart without persistence)


@pytest.fixture(params=["memory", "redis"])
async def stores(request: pytest.FixtureRequest) -> AsyncIterator[Stores]:
    if request.param == "memory":
        store = MemoryDedupStore()

        async def flush() -> None:
            store._claims = type(store._claims)()

        yield Stores("memory", store, store, flush)
        return
    url = request.getfixturevalue("fresh_redis_url")
    r1, r2 = make_redis(url), make_redis(url)

    async def rflush() -> None:
        await r1.flushdb()

    yield Stores("redis", RedisDedupStore(r1), RedisDedupStore(r2), rflush)
    await r1.aclose()
    await r2.aclose()


async def test_first_claim_owns_a_second_finds_it_busy(stores: Stores) -> None:
    first = await stores.dedup.claim("web:m1", LEASE, TTL)
    assert first.status == "owner" and first.token and not first.took_over
    again = await stores.other.claim("web:m1", LEASE, TTL)
    assert again.status == "busy" and not again.token
    assert 0 < again.lease_left <= LEASE
    assert (await stores.other.claim("web:m2", LEASE, TTL)).status == "owner"


async def test_concurrent_claims_have_one_owner(stores: Stores) -> None:
    claims = await asyncio.gather(
        *[(stores.dedup if i % 2 else stores.other).claim("tg:42", 5, TTL) for i in range(50)]
    )
    assert [c.status for c in claims].count("owner") == 1


async def test_finish_hands_the_answer_to_waiting_and_later_retries(stores: Stores) -> None:
    owner = await stores.dedup.claim("web:a", 5, TTL)
    waiter = asyncio.create_task(stores.other.wait_result("web:a", timeout=3))
    await asyncio.sleep(0.05)
    assert not waiter.done()
    assert await stores.dedup.finish("web:a", owner.token, '[{"text": "你好"}]', TTL)
    assert await asyncio.wait_for(waiter, 3) == '[{"text": "你好"}]'
    done = await stores.other.claim("web:a", 5, TTL)
    assert done.status == "done" and done.result == '[{"text": "你好"}]'
    assert await stores.other.wait_result("web:a", timeout=0.01) == '[{"text": "你好"}]'
    # an empty answer is an answer too
    o2 = await stores.dedup.claim("web:b", 5, TTL)
    assert await stores.dedup.finish("web:b", o2.token, "[]", TTL)
    assert (await stores.other.claim("web:b", 5, TTL)).result == "[]"


async def test_an_expired_lease_is_taken_over_and_the_old_owner_is_fenced(stores: Stores) -> None:
    dead = await stores.dedup.claim("sms:x", LEASE, TTL)
    await asyncio.sleep(LEASE + 0.1)
    heir = await stores.other.claim("sms:x", LEASE * 10, TTL)
    assert heir.status == "owner" and heir.took_over and heir.token != dead.token
    # the first owner (stalled, not dead) can no longer act on the key
    assert not await stores.dedup.renew("sms:x", dead.token, LEASE)
    assert not await stores.dedup.finish("sms:x", dead.token, '["late"]', TTL)
    assert not await stores.dedup.release("sms:x", dead.token)
    assert (await stores.dedup.claim("sms:x", LEASE, TTL)).status == "busy"
    assert await stores.other.finish("sms:x", heir.token, '["heir"]', TTL)
    assert (await stores.dedup.claim("sms:x", LEASE, TTL)).result == '["heir"]'


async def test_a_takeover_race_has_one_winner(stores: Stores) -> None:
    await stores.dedup.claim("wx:1", LEASE, TTL)
    await asyncio.sleep(LEASE + 0.1)
    claims = await asyncio.gather(*[(stores.dedup if i % 2 else stores.other).claim("wx:1", 5, TTL) for i in range(30)])
    owners = [c for c in claims if c.status == "owner"]
    assert len(owners) == 1 and owners[0].took_over


async def test_renewing_keeps_the_lease_alive(stores: Stores) -> None:
    owner = await stores.dedup.claim("web:long", LEASE, TTL)
    for _ in range(6):  # twice the lease in all
        await asyncio.sleep(LEASE / 3)
        assert await stores.dedup.renew("web:long", owner.token, LEASE)
    assert (await stores.other.claim("web:long", LEASE, TTL)).status == "busy"


async def test_release_lets_the_retry_through_only_for_the_owner(stores: Stores) -> None:
    owner = await stores.dedup.claim("sms:r", 5, TTL)
    waiter = asyncio.create_task(stores.other.wait_result("sms:r", timeout=0.5))
    assert not await stores.dedup.release("sms:r", "not-the-token")
    assert await stores.dedup.release("sms:r", owner.token)
    assert await asyncio.wait_for(waiter, 3) is None  # no answer: the waiter claims again
    fresh = await stores.other.claim("sms:r", 5, TTL)
    assert fresh.status == "owner" and not fresh.took_over
    assert await stores.other.wait_result("sms:r", timeout=0.05) is None  # no stale answer


async def test_wait_times_out_and_unknown_keys_return_none(stores: Stores) -> None:
    assert await stores.dedup.wait_result("never-claimed", timeout=0.05) is None
    await stores.dedup.claim("slow", 5, TTL)
    t0 = time.monotonic()
    assert await stores.other.wait_result("slow", timeout=0.15) is None
    assert 0.1 <= time.monotonic() - t0 < 5.0  # the upper bound only catches a hang


async def test_the_answer_expires_with_its_ttl(stores: Stores) -> None:
    owner = await stores.dedup.claim("exp", 5, 1)
    assert await stores.dedup.finish("exp", owner.token, "[]", 1)
    await asyncio.sleep(1.1)
    assert (await stores.other.claim("exp", 5, 1)).status == "owner"


async def test_an_answer_finished_after_the_key_was_lost_is_kept(stores: Stores) -> None:
    """The store forgot the claim (Redis restarted) while the owner worked: its answer
    is still stored for the retries that follow; a new owner's claim is not overwritten."""
    owner = await stores.dedup.claim("tg:lost", 5, TTL)
    await stores.flush()
    assert await stores.dedup.finish("tg:lost", owner.token, '["kept"]', TTL)
    assert (await stores.other.claim("tg:lost", 5, TTL)).result == '["kept"]'
    first = await stores.dedup.claim("tg:lost2", 5, TTL)
    await stores.flush()
    second = await stores.other.claim("tg:lost2", 5, TTL)
    assert second.status == "owner"
    assert not await stores.dedup.finish("tg:lost2", first.token, '["stale"]', TTL)
