"""A message whose worker died mid-way is answered once by the retry that takes it over.

The dead worker is simulated at each point it could die: after claiming (nothing written),
after recording the inbound message (no answer), after recording the answer (before the
dedup store heard of it). A live worker that is merely slow keeps its lease and the retry
waits for its answer.
"""

from __future__ import annotations

import asyncio

from bot.core import metrics
from bot.core.messages import Incoming, replies_to_json
from bot.core.models import ChannelAccount, TranscriptEntry
from bot.core.accounts import account_for

LEASE = 0.3


def msg(mid: str, user: str = "tk-user", text: str = "流量怎么查") -> Incoming:
    return Incoming(channel="telegram", user=user, text=text, msg_id=mid)


def counter(metric, *labels: str) -> float:  # type: ignore[no-untyped-def]
    return metric.labels(*labels)._value.get()


async def rows(mid: str) -> tuple[int, int]:
    """(inbound rows of the message, outbound rows of its member)."""
    inbound = await TranscriptEntry.filter(channel="telegram", msg_id=mid, direction="in")
    if not inbound:
        return 0, 0
    out = await TranscriptEntry.filter(member_id=inbound[0].member_id, direction="out").count()
    return len(inbound), out


async def dead_claim(services, key: str) -> None:  # type: ignore[no-untyped-def]
    """A worker claimed the message, then was killed (its lease is never renewed)."""
    services.settings.dedup_lease_seconds = LEASE
    claim = await services.dedup.claim(key, LEASE, services.settings.dedup_ttl_seconds)
    assert claim.status == "owner"


async def test_worker_died_before_writing_anything(services) -> None:  # type: ignore[no-untyped-def]
    await dead_claim(services, "telegram:d1")
    before = counter(metrics.DEDUP_TAKEOVERS, "telegram")
    handled = await services.pipeline.handle(msg("d1"), wait=LEASE * 4)
    assert handled.status == "answered" and handled.replies
    assert counter(metrics.DEDUP_TAKEOVERS, "telegram") == before + 1
    assert await rows("d1") == (1, len(handled.replies))
    again = await services.pipeline.handle(msg("d1"))
    assert again.status == "repeat" and again.replies == handled.replies
    assert await rows("d1") == (1, len(handled.replies))


async def test_worker_died_after_recording_the_message_but_before_answering(services) -> None:  # type: ignore[no-untyped-def]
    """Not swallowed as a duplicate: answered now, as that message, exactly once."""
    account, _ = await account_for(None, "telegram", "tk-user")
    await TranscriptEntry.create(
        member_id=account.member.id, channel="telegram", direction="in", text="流量怎么查", msg_id="d2"
    )
    await dead_claim(services, "telegram:d2")
    handled = await services.pipeline.handle(msg("d2"), wait=LEASE * 4)
    assert handled.status == "answered" and handled.replies
    assert await rows("d2") == (1, len(handled.replies))
    inbound = await TranscriptEntry.get(channel="telegram", msg_id="d2")
    assert inbound.payload == {"replies": [r.to_dict() for r in handled.replies]}
    # with the dedup key lost too, a later retry gets that answer from the transcript
    services.dedup._claims = type(services.dedup._claims)()
    again = await services.pipeline.handle(msg("d2"))
    assert again.status == "repeat" and again.replies == handled.replies
    assert await rows("d2") == (1, len(handled.replies))


async def test_worker_died_after_answering_before_the_store_heard(services) -> None:  # type: ignore[no-untyped-def]
    """The answer is in the transcript: the retry gets it back (not silence), no second answer."""
    first = await services.pipeline.handle(msg("d3"))
    assert first.replies
    services.dedup._claims = type(services.dedup._claims)()  # the finish never reached the store
    await dead_claim(services, "telegram:d3")
    before = counter(metrics.RECOVERED_ANSWERS, "telegram", "recorded")
    handled = await services.pipeline.handle(msg("d3"), wait=LEASE * 4)
    assert handled.status == "repeat" and handled.replies == first.replies
    assert counter(metrics.RECOVERED_ANSWERS, "telegram", "recorded") == before + 1
    assert await rows("d3") == (1, len(first.replies))
    # and the store now holds it for the next retry
    c = await services.dedup.claim("telegram:d3", LEASE, 60)
    assert c.status == "done" and c.result == replies_to_json(first.replies)


async def test_a_slow_live_worker_keeps_its_lease_and_the_retry_waits(services, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    services.settings.dedup_lease_seconds = LEASE
    router = services.pipeline.router
    original = router.dispatch

    async def slow(ctx):  # type: ignore[no-untyped-def]
        await asyncio.sleep(LEASE * 4)  # four leases: only renewals keep it
        return await original(ctx)

    monkeypatch.setattr(router, "dispatch", slow)
    before = counter(metrics.DEDUP_TAKEOVERS, "telegram")
    first = asyncio.create_task(services.pipeline.handle(msg("d4")))
    await asyncio.sleep(LEASE / 2)
    retry = await services.pipeline.handle(msg("d4"), wait=LEASE * 8)
    done = await first
    assert done.status == "answered" and retry.status == "repeat" and retry.replies == done.replies
    assert counter(metrics.DEDUP_TAKEOVERS, "telegram") == before
    assert await rows("d4") == (1, len(done.replies))


async def test_a_retry_that_cannot_wait_long_enough_says_pending(services, monkeypatch) -> None:  # type: ignore[no-untyped-def]
    services.settings.dedup_lease_seconds = 5
    router = services.pipeline.router
    original = router.dispatch
    gate = asyncio.Event()

    async def held(ctx):  # type: ignore[no-untyped-def]
        await gate.wait()
        return await original(ctx)

    monkeypatch.setattr(router, "dispatch", held)
    first = asyncio.create_task(services.pipeline.handle(msg("d5")))
    await asyncio.sleep(0.05)
    assert (await services.pipeline.handle(msg("d5"), wait=0.1)).status == "pending"
    gate.set()
    assert (await first).status == "answered"
    assert await ChannelAccount.filter(channel="telegram", external_id="tk-user").count() == 1


async def test_a_retry_waits_out_a_dead_workers_lease_by_default(services) -> None:  # type: ignore[no-untyped-def]
    """A retry (SMS webhook, web chat) on another worker while the dead one's lease still
    runs does not go away empty-handed, however short the WeChat deadline is."""
    services.settings.wechat_reply_deadline_seconds = 0.05
    await dead_claim(services, "telegram:d6")
    replies = await services.pipeline.process(msg("d6"))
    assert replies and await rows("d6") == (1, len(replies))
