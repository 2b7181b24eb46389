"""Outbox claims carry a fencing token (issue #17 leftovers).

A worker that is slow, not dead, may still finish after its lease expired and another
worker re-claimed the row: its ``mark_sent`` (or failure) must change nothing. And a send
that takes longer than the lease keeps its row, because the lease is renewed while the
provider call is in flight. Both on SQLite and on PostgreSQL (the production database).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from bot.core import storage
from bot.core.channel_registry import ChannelRegistry, SendResult
from bot.core.clock import utcnow
from bot.core.messages import Reply
from bot.core.models import OutboxMessage
from bot.core.outbox import (
    OUTBOX_STALE,
    Outbox,
    OutboxWorker,
    claim_row,
    mark_sent,
    reclaim_expired,
    renew_lease,
)
from bot.core.stores import MemoryRateLimiter
from tests.conftest import make_settings

CHANNEL = "claimtest"


class SlowSender:
    """A provider that takes ``delay`` seconds per send, or waits for ``gate`` when given."""

    name = CHANNEL
    rate_global = None
    rate_per_chat = None

    def __init__(self, delay: float = 0.0) -> None:
        self.delay = delay
        self.gate: asyncio.Event | None = None
        self.started = asyncio.Event()
        self.sent: list[int] = []

    async def send(self, message: OutboxMessage, reply: Reply, locale: str) -> SendResult:
        self.started.set()
        if self.gate is not None:
            await self.gate.wait()
        await asyncio.sleep(self.delay)
        self.sent.append(message.id)
        return SendResult(provider_ref=f"p-{message.id}-{len(self.sent)}")


@pytest_asyncio.fixture(params=["sqlite", pytest.param("postgres", marks=pytest.mark.services)])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "sqlite":
        url = f"sqlite://{tmp_path / 'claims.sqlite3'}"
    else:
        url = request.getfixturevalue("fresh_postgres_url")
    await storage.open_db(url, create_schema=True)
    try:
        yield request.param
    finally:
        await storage.close_db()


def worker(tmp_path: Path, sender: SlowSender, lease: float) -> OutboxWorker:
    settings = make_settings(tmp_path, outbox_lease_seconds=lease)
    channels = ChannelRegistry()
    channels.register(sender)
    return OutboxWorker(settings, Outbox(settings), channels, MemoryRateLimiter())


async def new_row() -> OutboxMessage:
    return await OutboxMessage.create(
        channel=CHANNEL, address="a1", payload=Reply(text="您好").to_dict(), purpose="agent", next_attempt_at=utcnow()
    )


async def expire(row_id: int) -> None:
    """The claimant stalled past its lease (a GC pause, a stuck event loop)."""
    await OutboxMessage.filter(id=row_id).update(next_attempt_at=utcnow() - timedelta(seconds=1))


def stale_count(step: str) -> float:
    return OUTBOX_STALE.labels(CHANNEL, step)._value.get()


async def test_a_stale_workers_mark_sent_after_a_takeover_changes_nothing(db: str) -> None:
    row = await new_row()
    first = await claim_row(row.id, 5.0)
    assert first
    await expire(row.id)
    assert await reclaim_expired() == [row.id]
    second = await claim_row(row.id, 5.0)
    assert second and second != first
    before = stale_count("mark_sent")
    assert not await mark_sent(row.id, attempts=1, provider_ref="late", token=first, channel=CHANNEL)
    assert not await renew_lease(row.id, first, 5.0)
    after = await OutboxMessage.get(id=row.id)
    assert (after.status, after.claim_token, after.provider_ref, after.sent_at) == ("sending", second, "", None)
    assert stale_count("mark_sent") == before + 1
    assert await mark_sent(row.id, attempts=1, provider_ref="owner", token=second, channel=CHANNEL)
    done = await OutboxMessage.get(id=row.id)
    assert (done.status, done.provider_ref) == ("sent", "owner")


async def test_a_slow_send_that_lost_its_row_records_nothing(db: str, tmp_path: Path) -> None:
    """The whole send path: the first worker's late outcome is refused, the new owner's stands."""
    sender = SlowSender()
    sender.gate = asyncio.Event()
    slow = worker(tmp_path, sender, lease=30.0)
    row = await new_row()
    first = await claim_row(row.id, 30.0)
    assert first
    task = asyncio.create_task(slow.send_one(row.id, first))
    await asyncio.wait_for(sender.started.wait(), 5)
    await expire(row.id)  # its renewals stopped (the process stalled): the lease ran out
    assert await reclaim_expired() == [row.id]
    second = await claim_row(row.id, 30.0)
    assert second
    sender.gate.set()
    assert await asyncio.wait_for(task, 5) == "stale"
    held = await OutboxMessage.get(id=row.id)
    assert (held.status, held.claim_token, held.attempts) == ("sending", second, 0)
    assert await slow.send_one(row.id, second) == "sent"
    done = await OutboxMessage.get(id=row.id)
    assert (done.status, done.attempts, done.provider_ref) == ("sent", 1, f"p-{row.id}-2")


async def test_a_send_longer_than_the_lease_keeps_its_row(db: str, tmp_path: Path) -> None:
    lease = 0.6
    sender = SlowSender(delay=lease * 3)
    busy = worker(tmp_path, sender, lease=lease)
    row = await new_row()
    token = await claim_row(row.id, lease)
    assert token
    task = asyncio.create_task(busy.send_one(row.id, token))
    taken: list[int] = []
    rivals: list[str] = []
    while not task.done():  # another worker's sweeper and claims, all through the send
        taken += await reclaim_expired()
        rival = await claim_row(row.id, lease)
        if rival:
            rivals.append(rival)
        await asyncio.sleep(0.05)
    assert await task == "sent"
    assert taken == [] and rivals == []
    done = await OutboxMessage.get(id=row.id)
    assert (done.status, done.attempts, done.claim_token) == ("sent", 1, token)
    assert sender.sent == [row.id]


async def test_a_crash_after_the_row_was_marked_sent_does_not_send_it_again(db: str, tmp_path: Path) -> None:
    """Remembering the sent choices fails (state store down): the row stays sent, not retried."""
    from bot.core.accounts import get_or_create_account
    from bot.core.messages import Choice

    class BrokenState:
        async def get(self, key: str) -> dict:  # type: ignore[type-arg]
            raise ConnectionError("state store down")

    sender = SlowSender()
    w = worker(tmp_path, sender, lease=30.0)
    w.state = BrokenState()  # type: ignore[assignment]
    account = await get_or_create_account("web", "crash-1")
    row = await OutboxMessage.create(
        channel=CHANNEL,
        address="a1",
        member_id=account.member_id,
        purpose="agent",
        payload=Reply(text="请选择", choices=[Choice("满意", "survey:1:5")]).to_dict(),
        next_attempt_at=utcnow(),
    )
    token = await claim_row(row.id, 30.0)
    assert token
    await w._sem.acquire()
    await w._send_guarded(row.id, token)
    after = await OutboxMessage.get(id=row.id)
    assert (after.status, after.attempts) == ("sent", 1) and sender.sent == [row.id]
