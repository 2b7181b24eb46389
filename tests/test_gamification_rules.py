"""Scoring rules, credibility, leaderboards (SQL and Redis agree), badges and expiry."""

from __future__ import annotations

import random
from collections.abc import AsyncIterator
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
import pytest_asyncio
from hypothesis import given, strategies as st

from bot.core import storage
from bot.core.models import Member
from gamification import badges, ledger
from gamification.credibility import assess
from gamification.leaderboard import RedisLeaderboard, SqlLeaderboard, period_start
from gamification.models import Balance, LedgerEntry
from gamification.rules import load_rules, parse_rules
from tests.gamification_helpers import standalone

RULES = load_rules()


@given(difficulty=st.integers(-3, 12), new=st.booleans(), mult=st.sampled_from([0.5, 1.0, 1.2]))
def test_forward_points_are_monotonic_and_positive(difficulty: int, new: bool, mult: float) -> None:
    pts = RULES.forward_points(difficulty, new, mult)
    assert pts >= 1
    assert RULES.forward_points(difficulty + 1, new, mult) >= pts  # harder never pays less
    assert RULES.forward_points(difficulty, True, mult) >= RULES.forward_points(difficulty, False, mult)


@given(ratings=st.integers(0, 200), data=st.data())
def test_credibility_counts_only_after_minimum(ratings: int, data: st.DataObject) -> None:
    accurate = data.draw(st.integers(0, ratings))
    c = assess(RULES, ratings, accurate)
    if ratings < RULES.min_ratings:
        assert c.multiplier == 1.0 and c.rate is None
    else:
        assert c.rate == pytest.approx(accurate / ratings)
        assert c.multiplier in (RULES.credible_multiplier, RULES.poor_multiplier, 1.0)
        assert (c.level == "poor") == (accurate / ratings < RULES.poor_rate)


def test_bad_rules_are_refused_clearly() -> None:
    with pytest.raises(ValueError, match="invalid gamification rules"):
        parse_rules({"events": {"x": {"points": "many"}}})
    with pytest.raises(ValueError):
        parse_rules({"events": {"x": {"points": -5}}})
    assert parse_rules({}).event("ask") is None  # asking earns nothing


@given(days=st.sets(st.integers(0, 40), max_size=30))
def test_streak_counts_consecutive_days_back_from_today(days: set[int]) -> None:
    today = date(2026, 3, 1)
    stamps = {today - timedelta(days=d) for d in days}
    n = badges.streak_days(stamps, today)
    start = 0 if 0 in days else 1
    expected = 0
    while start + expected in days:
        expected += 1
    assert n == expected


@pytest_asyncio.fixture
async def db(tmp_path: Path) -> AsyncIterator[None]:
    await storage.open_db(f"sqlite://{tmp_path / 'r.sqlite3'}", create_schema=True)
    try:
        yield
    finally:
        await storage.close_db()


async def _populate(board: RedisLeaderboard | None, n: int, seed: int) -> list[Member]:
    """Awards one second apart (Redis breaks ties at one-second resolution), all in the past:
    starting them at the week's start put some in the future when the test ran in a week's
    first 90 seconds. A run that straddles a week or month boundary splits them the same
    way for both boards."""
    rnd = random.Random(seed)
    members = [await Member.create(display_name=f"m{i}") for i in range(n)]
    staff = await Member.create(display_name="staff", is_staff=True)
    base = datetime.now(timezone.utc).replace(microsecond=0) - timedelta(seconds=n * 3 + 5)
    for i in range(n * 3):
        m = rnd.choice(members + [staff])
        res = await ledger.award(m.id, "answer_helpful", rnd.choice([5, 10, 10, 20]), key=f"p{seed}:{i}")
        at = base + timedelta(seconds=i)
        await LedgerEntry.filter(id=res.entry_id).update(created_at=at)
        await Balance.filter(member_id=m.id).update(last_earned_at=at)
        if board and not m.is_staff:
            await board.record(m.id, res.granted, at)
    return members


@pytest.mark.services
async def test_redis_and_sql_leaderboards_agree(db: None, fresh_redis_url: str) -> None:
    from redis.asyncio import Redis

    redis = Redis.from_url(fresh_redis_url)
    board = RedisLeaderboard(redis, prefix="t")
    members = await _populate(board, 30, seed=7)
    sql = SqlLeaderboard()
    for period in ("week", "month", "all"):
        for me in (members[0].id, members[17].id, None):
            a = await sql.standing(period, me, limit=10)
            b = await board.standing(period, me, limit=10)
            assert [(r.rank, r.points) for r in a.top] == [(r.rank, r.points) for r in b.top]
            assert [r.member_id for r in a.top] == [r.member_id for r in b.top]
            assert a.me == b.me and a.around == b.around
    st_ = await sql.standing("all", None, limit=30)
    ranks = [r.rank for r in st_.top]
    assert ranks == sorted(ranks) and ranks[0] == 1
    assert all(b - a in (0, 1) for a, b in zip(ranks, ranks[1:]))  # dense
    # a reversal lowers the Redis total too, and removing a member takes them off
    top = st_.top[0]
    await board.record(top.member_id, -top.points, datetime.now(timezone.utc))
    after = await board.standing("all", top.member_id)
    assert after.me is None and all(r.member_id != top.member_id for r in after.top)
    await redis.aclose()


async def test_sql_board_ties_go_to_the_earlier_achiever(db: None) -> None:
    a, b, c = [await Member.create(display_name=n) for n in "abc"]
    await ledger.award(a.id, "answer_helpful", 10, key="a1")
    await ledger.award(b.id, "answer_helpful", 10, key="b1")
    await ledger.award(c.id, "answer_helpful", 30, key="c1")
    stg = await SqlLeaderboard().standing("week", b.id)
    assert [(r.member_id, r.rank) for r in stg.top] == [(c.id, 1), (a.id, 2), (b.id, 2)]
    assert stg.me is not None and stg.me.rank == 2


async def test_expiry_spends_oldest_points_and_reminds_once(db: None) -> None:
    m = await Member.create()
    old = await ledger.award(m.id, "answer_helpful", 50, key="old")
    await ledger.spend(m.id, 20, key="used")
    await ledger.award(m.id, "answer_helpful", 40, key="new")
    now = datetime.now(timezone.utc)
    await LedgerEntry.filter(id=old.entry_id).update(created_at=now - timedelta(days=RULES.expiry_days + 1))
    gam = standalone()
    expired, _ = await gam.run_expiry(now)
    assert expired == 1
    assert (await ledger.balance_of(m.id)).balance == 40  # 50 old − 20 spent = 30 expired
    again, _ = await gam.run_expiry(now)
    assert again == 0 and (await ledger.balance_of(m.id)).balance == 40
    assert period_start("week", now).weekday() == 0
