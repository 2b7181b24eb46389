"""One outbox rule in the embedded mode too: a row left in ``sending`` by a killed process
goes back to the queue once its lease is over, at start-up and periodically; admins may
re-send such a stuck row, never one being sent right now."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
import pytest_asyncio

from bot.core.app_keys import OUTBOX_WORKER
from bot.core import metrics
from bot.core.messages import Reply
from bot.core.models import OutboxMessage
from bot.core.outbox import OutboxWorker, utcnow
from bot.core.accounts import get_or_create_account
from bot.core.settings import Settings
from tests.conftest import make_settings
from tests.outbox_waits import wait_status


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, outbox_lease_seconds=2.0)


async def stuck_row(services, address: str, lease_left: float) -> OutboxMessage:  # type: ignore[no-untyped-def]
    """A row as a process killed mid-send leaves it: ``sending``, leased until now + lease_left."""
    account = await get_or_create_account("web", address)
    return await OutboxMessage.create(
        channel="web",
        address=address,
        member_id=account.member_id,
        payload=Reply(text="客服回复").to_dict(),
        purpose="agent",
        status="sending",
        next_attempt_at=utcnow() + timedelta(seconds=lease_left),
    )


async def test_expired_lease_is_sent_again_periodically_and_a_live_one_is_left_alone(services) -> None:  # type: ignore[no-untyped-def]
    before = metrics.OUTBOX_RECLAIMED.labels("web")._value.get()
    lost = await stuck_row(services, "lease-1", lease_left=-1)
    busy = await stuck_row(services, "lease-2", lease_left=60)
    row = await wait_status(lost.id, "sent", timeout=5)  # the worker looks every second here
    assert row.status == "sent" and row.attempts == 1
    assert metrics.OUTBOX_RECLAIMED.labels("web")._value.get() == before + 1
    await asyncio.sleep(1.2)  # at least one more reclaim round
    assert (await OutboxMessage.get(id=busy.id)).status == "sending"


async def test_a_restarted_process_takes_back_its_stuck_rows_at_start_up(client, services) -> None:  # type: ignore[no-untyped-def]
    running: OutboxWorker = client.app[OUTBOX_WORKER]
    # the process that was sending dies: no periodic reclaim of its own any more (a reclaim it
    # had already scheduled could otherwise fire on a slow machine); only a start-up reclaim
    # of the next process can free the row now
    await running.stop()
    lost = await stuck_row(services, "lease-3", lease_left=-1)
    await asyncio.sleep(0.3)
    assert (await OutboxMessage.get(id=lost.id)).status == "sending"
    fresh = OutboxWorker(services.settings, services.outbox, services.channels, services.limiter)
    fresh.reclaim_every = 3600.0
    task = asyncio.create_task(fresh.run())
    try:
        assert (await wait_status(lost.id, "sent", timeout=3)).status == "sent"
    finally:
        await fresh.stop()
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)


@pytest_asyncio.fixture
async def admin(client):  # type: ignore[no-untyped-def]
    from bot.staff.auth import create_staff, start_session

    token, session = await start_session(await create_staff("boss", "correct horse battery", ["admin"]))
    client.session.cookie_jar.update_cookies({"everycsr_staff": token})
    return {"X-CSRF-Token": session.csrf_token}


async def test_admin_retry_accepts_a_stuck_row_and_refuses_one_being_sent(client, services, admin) -> None:  # type: ignore[no-untyped-def]
    running: OutboxWorker = client.app[OUTBOX_WORKER]
    running.reclaim_every = 3600.0
    await asyncio.sleep(1.1)  # let the worker's current reclaim interval pass the old setting
    busy = await stuck_row(services, "lease-5", lease_left=60)
    resp = await client.post(f"/api/v1/admin/outbox/{busy.id}/retry", headers=admin)
    assert resp.status == 409
    assert (await OutboxMessage.get(id=busy.id)).status == "sending"
    await OutboxMessage.filter(id=busy.id).update(next_attempt_at=utcnow() - timedelta(seconds=1))
    resp = await client.post(f"/api/v1/admin/outbox/{busy.id}/retry", headers=admin)
    assert resp.status == 200, await resp.text()
    assert (await wait_status(busy.id, "sent", timeout=5)).status == "sent"
    resp = await client.post(f"/api/v1/admin/outbox/{busy.id}/retry", headers=admin)
    assert resp.status == 404  # sent: nothing to retry
