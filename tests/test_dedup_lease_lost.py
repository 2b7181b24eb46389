"""A handler that lost its dedup lease writes nothing and sends nothing (issue #17 leftovers).

A worker that stalls past its processing lease (its renewals did not happen) may find, when
its handler returns, that a retry took the message over. It must not record its answer or
hand it to the channel: the new owner answers, once. Run with the in-process and the Redis
dedup stores.
"""

from __future__ import annotations

import asyncio

import pytest

from bot import pipeline as pipeline_module
from bot.core import metrics
from bot.core.messages import Incoming
from bot.core.models import TranscriptEntry
from bot.core.redis_stores import RedisDedupStore, make_redis

LEASE = 0.3


@pytest.fixture(params=["memory", pytest.param("redis", marks=pytest.mark.services)])
async def dedup_services(request: pytest.FixtureRequest, services):  # type: ignore[no-untyped-def]
    services.settings.dedup_lease_seconds = LEASE
    if request.param == "memory":
        yield services
        return
    redis = make_redis(request.getfixturevalue("fresh_redis_url"))
    memory = services.dedup
    services.dedup = RedisDedupStore(redis)
    try:
        yield services
    finally:
        services.dedup = memory
        await redis.aclose()


async def test_a_handler_that_lost_its_lease_records_and_sends_nothing(dedup_services, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    services = dedup_services
    monkeypatch.setattr(pipeline_module._Lease, "_due", lambda self: None)  # renewals stalled
    router = services.pipeline.router
    original = router.dispatch
    gate = asyncio.Event()
    entered = asyncio.Event()

    async def stalled(ctx):  # type: ignore[no-untyped-def]
        entered.set()
        await gate.wait()
        return await original(ctx)

    monkeypatch.setattr(router, "dispatch", stalled)
    incoming = Incoming(channel="telegram", user="lost-user", text="流量怎么查", msg_id="lost-1")
    before = metrics.DEDUP_LEASE_LOST.labels("telegram")._value.get()
    first = asyncio.create_task(services.pipeline.handle(incoming, wait=0))
    await asyncio.wait_for(entered.wait(), 5)
    await asyncio.sleep(LEASE * 1.5)  # the stalled worker's lease runs out
    takeover = await services.dedup.claim(incoming.dedup_key, 30, services.settings.dedup_ttl_seconds)
    assert takeover.status == "owner" and takeover.took_over
    gate.set()
    handled = await asyncio.wait_for(first, 5)
    assert handled.status == "pending" and handled.replies == []
    assert metrics.DEDUP_LEASE_LOST.labels("telegram")._value.get() == before + 1
    inbound = await TranscriptEntry.get(channel="telegram", msg_id="lost-1")
    assert inbound.payload is None  # no answer recorded on the inbound row
    assert await TranscriptEntry.filter(member_id=inbound.member_id, direction="out").count() == 0
    # the key is still the new owner's: the stalled worker neither finished nor released it
    assert await services.dedup.renew(incoming.dedup_key, takeover.token, 30)


async def test_a_slow_handler_that_kept_its_lease_still_answers(dedup_services, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """The check does not drop work whose lease is merely old: renewals kept it."""
    services = dedup_services
    router = services.pipeline.router
    original = router.dispatch

    async def slow(ctx):  # type: ignore[no-untyped-def]
        await asyncio.sleep(LEASE * 2)
        return await original(ctx)

    monkeypatch.setattr(router, "dispatch", slow)
    handled = await services.pipeline.handle(
        Incoming(channel="telegram", user="kept-user", text="流量怎么查", msg_id="kept-1")
    )
    assert handled.status == "answered" and handled.replies
    inbound = await TranscriptEntry.get(channel="telegram", msg_id="kept-1")
    assert await TranscriptEntry.filter(member_id=inbound.member_id, direction="out").count() == len(handled.replies)
