"""The points ledger: properties over random event sequences, caps, and races."""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from tortoise.functions import Sum

from bot.core import storage
from bot.core.models import Member
from gamification import caps, ledger, rewards
from gamification.models import Balance, LedgerEntry, Redemption, Reward
from gamification.rules import load_rules

RULES = load_rules()


async def check_invariants(member_id: int) -> None:
    bal = await Balance.get_or_none(member_id=member_id)
    total = (await LedgerEntry.filter(member_id=member_id).annotate(s=Sum("granted")).values_list("s", flat=True))[
        0
    ] or 0
    balance, debt = (bal.balance, bal.debt) if bal else (0, 0)
    assert balance >= 0 and debt >= 0
    assert balance - debt == total
    assert not (balance > 0 and debt > 0)
    keys = await LedgerEntry.filter(member_id=member_id).values_list("idempotency_key", flat=True)
    assert len(keys) == len(set(keys))
    for orig in await LedgerEntry.filter(member_id=member_id, reversal_of_id=None):
        revs = await LedgerEntry.filter(reversal_of_id=orig.id)
        assert len(revs) <= 1
        if revs:
            assert orig.granted + revs[0].granted == 0


ops = st.lists(
    st.one_of(
        st.tuples(st.just("award"), st.integers(0, 7), st.integers(0, 60)),
        st.tuples(st.just("spend"), st.integers(0, 7), st.integers(1, 80)),
        st.tuples(st.just("reverse"), st.integers(0, 30), st.just(0)),
    ),
    min_size=1,
    max_size=30,
)


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=ops)
async def test_random_sequences_keep_the_ledger_consistent(sqlite_orm: None, seq: list[tuple[str, int, int]]) -> None:
    member = await Member.create(display_name="p")
    paid: dict[str, int] = {}
    entries: list[int] = []
    for op, k, amount in seq:
        key = f"m{member.id}:{op}:{k}"
        if op == "award":
            res = await ledger.award(member.id, "answer_helpful", amount, key=key)
            if key in paid:
                assert res.duplicate and res.granted == paid[key]
            paid[key] = res.granted
            entries.append(res.entry_id)
        elif op == "spend":
            before = (await ledger.balance_of(member.id)).balance
            try:
                res = await ledger.spend(member.id, amount, key=key)
                assert res.duplicate or before >= amount
                entries.append(res.entry_id)
            except ledger.InsufficientPoints:
                assert before < amount
        elif entries:
            target = entries[k % len(entries)]
            try:
                await ledger.reverse(target, reason="test")
                await ledger.reverse(target, reason="replayed")  # a replay never acts twice
            except ledger.NotReversible:
                pass
        await check_invariants(member.id)
    # replaying every award key pays nothing more
    for key, granted in paid.items():
        res = await ledger.award(member.id, "answer_helpful", 999, key=key)
        assert res.duplicate and res.granted == granted
    await check_invariants(member.id)


async def test_concurrent_replays_of_one_event_pay_once(sqlite_orm: None) -> None:
    m = await Member.create()
    results = await asyncio.gather(*[ledger.award(m.id, "answer_accepted", 20, key="answer:1") for _ in range(50)])
    assert sum(1 for r in results if not r.duplicate) == 1
    assert (await ledger.balance_of(m.id)).balance == 20
    assert await LedgerEntry.filter(member_id=m.id).count() == 1


async def test_reversal_after_spending_records_debt_then_earnings_repay_it(sqlite_orm: None) -> None:
    m = await Member.create()
    first = await ledger.award(m.id, "answer_accepted", 20, key="a1")
    await ledger.spend(m.id, 15, key="s1")
    rev = await ledger.reverse(first.entry_id, reason="answer deleted")
    assert rev.granted == -20
    bal = await ledger.balance_of(m.id)
    assert (bal.balance, bal.debt) == (0, 15)
    await ledger.award(m.id, "answer_accepted", 20, key="a2")
    bal = await ledger.balance_of(m.id)
    assert (bal.balance, bal.debt) == (5, 0)
    with pytest.raises(ledger.NotReversible):
        await ledger.reverse(rev.entry_id)
    await check_invariants(m.id)


async def test_daily_cap_limits_accepted_answers_too_but_not_exempt_events(sqlite_orm: None) -> None:
    m = await Member.create()
    granted = []
    for i in range(45):
        res = await ledger.award(
            m.id, "answer_helpful", 5, key=f"h{i}", policy=caps.policy_for(RULES, m.id, "contribution_approved_x")
        )
        granted.append(res.granted)
    assert sum(granted) == RULES.daily_cap
    assert granted[-1] == 0
    # accepted answers count against the daily total now (issue 16): nothing left today
    res = await ledger.award(
        m.id, "answer_accepted", 20, key="acc", policy=caps.policy_for(RULES, m.id, "answer_accepted")
    )
    assert res.granted == 0 and res.note == "daily cap"
    # an approved contribution (staff decided) is still exempt
    res = await ledger.award(
        m.id,
        "contribution_approved",
        30,
        key="contrib",
        exempt=True,
        policy=caps.policy_for(RULES, m.id, "contribution_approved"),
    )
    assert res.granted == 30
    await check_invariants(m.id)


async def _redeem_race(n: int) -> None:
    m = await Member.create(display_name="racer", phone=f"+86139{n:08d}", phone_verified_at=datetime.now(timezone.utc))
    await ledger.award(m.id, "answer_accepted", 30, key=f"race-seed-{m.id}")
    reward = await Reward.create(name="Sticker", kind="gift", cost=10, stock=1000, per_member_limit=1000)

    async def attempt(i: int) -> bool:
        try:
            await rewards.redeem(m.id, reward.id, request_key=f"race-{m.id}-{i}")
            return True
        except rewards.RedeemError as err:
            assert err.code == "insufficient"
            return False

    outcomes = await asyncio.gather(*[attempt(i) for i in range(n)])
    assert sum(outcomes) == 3
    bal = await ledger.balance_of(m.id)
    assert bal.balance == 0
    assert await Redemption.filter(member_id=m.id).count() == 3
    assert (await Reward.get(id=reward.id)).stock == 997
    await check_invariants(m.id)


async def test_200_simultaneous_redemptions_on_sqlite(sqlite_orm: None) -> None:
    await _redeem_race(200)


@pytest.mark.services
async def test_200_simultaneous_redemptions_on_postgres(fresh_postgres_url: str) -> None:
    await storage.open_db(fresh_postgres_url, create_schema=True)
    try:
        await _redeem_race(200)
        m = await Member.create()
        results = await asyncio.gather(
            *[ledger.award(m.id, "answer_accepted", 20, key=f"pg-dup-{m.id}") for _ in range(50)]
        )
        assert sum(1 for r in results if not r.duplicate) == 1
        await check_invariants(m.id)
    finally:
        await storage.close_db()
