"""Top-up orders against the loopback provider (tests/fakes/topup.py): bounded retries with
backoff, refund on the final failure (once), callback timeouts settled from the provider's
status, and ``python -m bot rewards reconcile``."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from bot.core import storage
from bot.app import create_app
from bot.core.models import Member
from gamification import ledger, rewards
from gamification.models import LedgerEntry, Redemption, Reward
from gamification.service import GAMIFICATION, Gamification
from tests.conftest import make_settings
from tests.fakes.topup import FakeTopupProvider
from tests.trust_helpers import make_trusted

ROOT = Path(__file__).resolve().parents[1]
SECRET = "topup-secret-r"
POLICY = rewards.FulfilPolicy(max_attempts=3, retry_base_seconds=60, timeout_minutes=30)


@pytest_asyncio.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[TestClient, FakeTopupProvider]]:
    provider = FakeTopupProvider(
        secret=SECRET, silent_numbers={"+8613900000011", "+8613900000012"}, lost_callback_numbers={"+8613900000013"}
    )
    await provider.start()
    app = create_app(make_settings(tmp_path, topup_api_base=provider.url, topup_secret=SECRET), db_setup="schema")
    async with TestClient(TestServer(app)) as c:
        gam = c.app[GAMIFICATION]
        gam.callback_url, gam.policy = str(c.make_url("/api/v1/topup/callback")), POLICY
        yield c, provider
    await provider.stop()


async def rich_member(gam: Gamification, phone: str) -> Member:
    m = await Member.create()
    await make_trusted(m, level=1, phone=phone)
    for i in range(10):
        await gam.award(m.id, "contribution_approved", f"contribution:r{m.id}:{i}")
    return m


async def settle(gam: Gamification) -> None:
    await gam.background.wait()
    await asyncio.sleep(0.1)  # the fake's callback, if any
    await gam.background.wait()


async def test_transient_failures_retry_with_backoff_then_succeed(env) -> None:
    client, provider = env
    gam = client.app[GAMIFICATION]
    reward = await Reward.create(name="10元话费", kind="topup", cost=50, stock=5, face_value=10)
    m = await rich_member(gam, "+8613900000001")
    provider.unavailable = 2
    r = await gam.redeem(m.id, reward.id, request_key="t1")
    await settle(gam)
    r = await Redemption.get(id=r.id)
    assert (r.status, r.attempts, provider.submissions) == ("pending", 1, 1)
    assert r.next_attempt_at is not None
    # inside the backoff: nothing is resubmitted
    assert await rewards.retry_pending(provider=gam.provider, callback_url=gam.callback_url, policy=POLICY) == 0
    assert provider.submissions == 1
    later = datetime.now(timezone.utc) + timedelta(seconds=61)
    await rewards.retry_pending(gam.provider, gam.callback_url, policy=POLICY, now=later)
    r = await Redemption.get(id=r.id)
    assert (r.status, r.attempts) == ("pending", 2)
    assert r.next_attempt_at - later > timedelta(seconds=100)  # the second wait is twice the first
    await rewards.retry_pending(gam.provider, gam.callback_url, policy=POLICY, now=later + timedelta(seconds=121))
    await settle(gam)
    assert (await Redemption.get(id=r.id)).status == "fulfilled"
    assert (await ledger.balance_of(m.id)).balance == 250


async def test_final_transient_failure_refunds_once(env) -> None:
    client, provider = env
    gam = client.app[GAMIFICATION]
    reward = await Reward.create(name="10元话费", kind="topup", cost=50, stock=5, face_value=10)
    m = await rich_member(gam, "+8613900000002")
    provider.unavailable = 100
    r = await gam.redeem(m.id, reward.id, request_key="t2")
    await settle(gam)
    for day in range(1, 6):  # more runs, each past the backoff, than attempts: bounded
        far = datetime.now(timezone.utc) + timedelta(days=day)
        await rewards.retry_pending(gam.provider, gam.callback_url, policy=POLICY, now=far)
    r = await Redemption.get(id=r.id)
    assert (r.status, r.attempts, provider.submissions) == ("failed", 3, 3)
    assert "gave up after 3 attempts" in r.note
    assert (await ledger.balance_of(m.id)).balance == 300
    assert await LedgerEntry.filter(idempotency_key=ledger.key_of("refund", r.id)).count() == 1
    assert (await Reward.get(id=reward.id)).stock == 5
    assert not await rewards.fail(r.id, "again")  # settled: a second refund is refused
    assert (await ledger.balance_of(m.id)).balance == 300


async def test_reconcile_settles_overdue_orders_from_the_provider_status(env) -> None:
    client, provider = env
    gam = client.app[GAMIFICATION]
    reward = await Reward.create(name="10元话费", kind="topup", cost=50, stock=10, per_member_limit=3, face_value=10)
    processing = await rich_member(gam, "+8613900000011")
    later_failed = await rich_member(gam, "+8613900000012")
    lost = await rich_member(gam, "+8613900000013")
    orders = {}
    for name, m in (("processing", processing), ("failed", later_failed), ("lost", lost)):
        orders[name] = await gam.redeem(m.id, reward.id, request_key=f"rc-{name}")
    await settle(gam)
    assert {(await Redemption.get(id=o.id)).status for o in orders.values()} == {"submitted"}
    # before the timeout: a lost callback whose order succeeded completes; the rest wait
    rows = await rewards.reconcile(gam.provider, gam.callback_url, POLICY)
    status = {k: (await Redemption.get(id=o.id)).status for k, o in orders.items()}
    assert status == {"processing": "submitted", "failed": "submitted", "lost": "fulfilled"}
    assert {r.redemption_id: r.after for r in rows}[orders["lost"].id] == "fulfilled"
    # the provider failed one meanwhile; another it never received; then the timeout passes
    provider.orders[rewards.order_id(orders["failed"])]["state"] = "failed"
    ghost = await Redemption.create(
        member_id=lost.id,
        reward_id=reward.id,
        cost=50,
        request_key="ghost",
        phone=lost.phone,
        status="submitted",
        submitted_at=datetime.now(timezone.utc),
    )
    late = datetime.now(timezone.utc) + timedelta(minutes=31)
    await rewards.reconcile(gam.provider, gam.callback_url, POLICY, now=late)
    status = {k: (await Redemption.get(id=o.id)).status for k, o in orders.items()}
    assert status == {"processing": "queued", "failed": "failed", "lost": "fulfilled"}
    assert (await Redemption.get(id=ghost.id)).status == "failed"
    # still processing at the provider: queued for staff, not refunded (the credit may arrive)
    assert (await ledger.balance_of(processing.id)).balance == 250
    assert (await ledger.balance_of(later_failed.id)).balance == 300
    assert "still processing" in (await Redemption.get(id=orders["processing"].id)).note
    # idempotent: a second run changes nothing and refunds nothing twice
    again = await rewards.reconcile(gam.provider, gam.callback_url, POLICY, now=late)
    assert all(r.before == r.after for r in again)
    assert (await ledger.balance_of(later_failed.id)).balance == 300
    assert provider.bad_signatures == 0


async def test_rewards_reconcile_command(tmp_path: Path) -> None:
    provider = FakeTopupProvider(secret=SECRET, lost_callback_numbers={"+8613900000021"})  # no server to call back
    await provider.start()
    url = f"sqlite://{tmp_path / 'cli.sqlite3'}"
    await storage.migrate(url)
    await storage.open_db(url)
    try:
        m = await Member.create(phone="+8613900000021")
        reward = await Reward.create(name="10元话费", kind="topup", cost=50, stock=5, face_value=10)
        spend = await ledger.award(m.id, "contribution_approved", 100, key="cli-r", policy=None)
        entry = await ledger.spend(m.id, 50, key="cli-spend", ref="reward:1")
        r = await Redemption.create(
            member_id=m.id,
            reward_id=reward.id,
            cost=50,
            request_key="cli",
            spend_entry_id=entry.entry_id,
            phone=m.phone,
            status="pending",
        )
        assert spend.granted == 100
    finally:
        await storage.close_db()
    env = {
        **os.environ,
        "BOT_DATABASE_URL": url,
        "BOT_REDIS_URL": "",
        "PYTHONPATH": str(ROOT),
        "BOT_TOPUP_API_BASE": provider.url,
        "BOT_TOPUP_SECRET": SECRET,
    }
    try:
        outs = []
        for _ in range(2):
            proc = await asyncio.create_subprocess_exec(
                sys.executable,
                "-m",
                "bot",
                "rewards",
                "reconcile",
                env=env,
                cwd=ROOT,
                stdout=asyncio.subprocess.PIPE,
                stderr=asyncio.subprocess.PIPE,
            )
            out, err = await asyncio.wait_for(proc.communicate(), 120)
            assert proc.returncode == 0, err.decode()
            outs.append(out.decode())
    finally:
        await provider.stop()
    # submitted, then settled from the provider's status in the same run (no callback came)
    assert f"redemption {r.id}: pending -> submitted" in outs[0]
    assert f"redemption {r.id}: submitted -> fulfilled" in outs[0] and "2 changed" in outs[0]
    assert provider.submissions == 1
    assert "0 changed" in outs[1]
