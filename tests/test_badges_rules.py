"""Badges as data in rules.yaml: granted, revoked after a reversal / forfeit / unmerge
(audited in gam_badge_event), re-run idempotently, and 自助达人 earned by self-service and
helping peers, not by points from any source."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import date, datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from bot.core import storage
from bot.core.identity.merge import Merger
from bot.core.models import AnswerFeedback, Member
from gamification import badges, ledger
from gamification.merge import LedgerMergeHook
from gamification.models import BadgeEvent, Balance, LedgerEntry, MemberBadge
from gamification.rules import load_rules, parse_rules
from tests.gamification_helpers import standalone

ROOT = Path(__file__).resolve().parents[1]
RULES = load_rules()
TODAY = datetime.now(timezone.utc).date()


def small_rules():  # type: ignore[no-untyped-def]
    raw = dict(RULES.raw)
    raw["badges"] = {
        "first_accept": {"metric": "accepted", "threshold": 1},
        "accept_10": {"metric": "accepted", "threshold": 3, "title": True},
        "expert_bronze": {"metric": "self_service", "threshold": 4, "title": True},
    }
    return parse_rules(raw)


async def accept(member_id: int, n: int, *, held: bool = False) -> list[int]:
    ids = []
    for i in range(n):
        res = await ledger.award(
            member_id,
            "answer_accepted",
            20,
            key=f"t:{member_id}:{i}:{os.urandom(4).hex()}",
            ref=f"answer:{member_id}{i}",
            policy=None,
        )
        if held:
            await LedgerEntry.filter(id=res.entry_id).update(granted=0, held=20)
        ids.append(res.entry_id)
    return ids


async def held_codes(member_id: int) -> set[str]:
    return set(await MemberBadge.filter(member_id=member_id).values_list("code", flat=True))


def test_badges_are_loaded_from_rules_yaml_and_validated() -> None:
    assert [b.code for b in badges.BADGES] == list(RULES.raw["badges"])
    gold = badges.BY_CODE["expert_gold"]
    assert gold.metric == "self_service" and gold.threshold == RULES.raw["badges"]["expert_gold"]["threshold"]
    assert gold.title == badges.NAMES["expert_gold"]
    assert all(b.metric != "lifetime" for b in badges.BADGES)
    with pytest.raises(ValueError, match="known metric"):
        parse_rules({**RULES.raw, "badges": {"x": {"metric": "lifetime", "threshold": 5}}})
    with pytest.raises(ValueError, match="threshold"):
        parse_rules({**RULES.raw, "badges": {"first_accept": {"metric": "accepted", "threshold": 0}}})
    with pytest.raises(ValueError, match="no name"):
        badges.badges_of(parse_rules({**RULES.raw, "badges": {"nameless": {"metric": "accepted", "threshold": 1}}}))


def test_longest_streak() -> None:
    d = date(2026, 1, 10)
    days = {d, d + timedelta(1), d + timedelta(2), d + timedelta(5)}
    assert badges.longest_streak(days) == 3 and badges.longest_streak(set()) == 0


async def test_grant_then_reversal_revokes_audited(sqlite_orm: None) -> None:
    rules = small_rules()
    m = await Member.create()
    ids = await accept(m.id, 3)
    out = await badges.reconcile(rules, m.id, TODAY, reason="award")
    assert {b.code for b in out.granted} == {"first_accept", "accept_10"} and not out.revoked
    # points from another source do not make a self-service expert
    await ledger.award(m.id, "contribution_approved", 5000, key="big", policy=None)
    assert (await Balance.get(member_id=m.id)).lifetime >= 5000
    assert "expert_bronze" not in await held_codes(m.id)
    # one accepted answer reversed: 2 < 3, accept_10 goes, with an audit row
    await ledger.reverse(ids[0], reason="removed")
    out = await badges.reconcile(rules, m.id, TODAY, reason="reversal")
    assert [b.code for b in out.revoked] == ["accept_10"]
    assert await held_codes(m.id) == {"first_accept"}
    ev = await BadgeEvent.get(member_id=m.id, code="accept_10", action="revoke")
    assert (ev.value, ev.threshold, ev.reason) == (2, 3, "reversal")
    assert await BadgeEvent.filter(member_id=m.id, action="grant").count() == 2


async def test_self_service_expert_from_helpful_days_and_peer_accepts(sqlite_orm: None) -> None:
    rules = small_rules()
    m = await Member.create()
    now = datetime.now(timezone.utc)
    for d in range(2):  # two days a KB answer helped; a third 👍 the same day counts once
        await AnswerFeedback.create(member_id=m.id, item_id=1, helpful=True, created_at=now - timedelta(days=d))
    await AnswerFeedback.create(member_id=m.id, item_id=2, helpful=True, created_at=now)
    await AnswerFeedback.create(member_id=m.id, item_id=3, helpful=False, created_at=now - timedelta(days=4))
    await AnswerFeedback.filter(member_id=m.id, item_id=1).update(created_at=now - timedelta(days=1))
    await AnswerFeedback.filter(member_id=m.id, item_id=2).update(created_at=now)
    values = await badges.metrics(rules, m.id, TODAY)
    assert values["self_service"] == 2
    await accept(m.id, 1)
    assert "expert_bronze" not in {b.code for b in (await badges.reconcile(rules, m.id, TODAY)).granted}
    await accept(m.id, 1)
    assert (await badges.metrics(rules, m.id, TODAY))["self_service"] == 4
    assert "expert_bronze" in {b.code for b in (await badges.reconcile(rules, m.id, TODAY)).granted}


async def test_forfeit_of_held_points_revokes(sqlite_orm: None) -> None:
    gam = standalone(small_rules())
    m = await Member.create()
    await accept(m.id, 1)
    await accept(m.id, 2, held=True)
    await badges.reconcile(gam.rules, m.id, TODAY)
    assert "accept_10" in await held_codes(m.id)
    await gam.forfeit_held(m.id)
    assert await held_codes(m.id) == {"first_accept"}
    assert await BadgeEvent.filter(member_id=m.id, code="accept_10", action="revoke", reason="forfeit").exists()


async def test_unmerge_revokes_what_the_source_earned_the_target(sqlite_orm: None) -> None:
    gam = standalone(small_rules())
    merger = Merger([LedgerMergeHook(gam)])
    src, dst = await Member.create(), await Member.create()
    await accept(src.id, 2)
    await accept(dst.id, 1)
    record = await merger.merge(src.id, dst.id, via="staff", actor="staff:t")
    # the target's history now includes the source's: 3 accepted answers
    out = await badges.reconcile(gam.rules, dst.id, TODAY)
    assert "accept_10" in {b.code for b in out.granted}
    assert await held_codes(src.id) == set()
    await merger.unmerge(record.id, actor="staff:t")
    assert await held_codes(dst.id) == {"first_accept"}
    assert await BadgeEvent.filter(member_id=dst.id, code="accept_10", action="revoke", reason="unmerge").exists()
    assert "first_accept" in await held_codes(src.id)


@hsettings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(plan=st.lists(st.tuples(st.integers(0, 5), st.integers(0, 5), st.integers(0, 3)), min_size=1, max_size=4))
async def test_rerun_makes_held_badges_equal_due_and_is_idempotent(sqlite_orm: None, plan: list) -> None:
    """Property: after a rerun every member holds exactly the badges whose metric meets the
    threshold, whatever they held before; a second rerun changes nothing."""
    rules = small_rules()
    defs = badges.badges_of(rules)
    members = []
    for accepted, reversed_, stale in plan:
        m = await Member.create()
        ids = await accept(m.id, accepted)
        for entry_id in ids[:reversed_]:
            await ledger.reverse(entry_id, reason="removed")
        for code in [b.code for b in defs][:stale]:  # badges held from before, due or not
            await MemberBadge.get_or_create(
                member_id=m.id, code=code, defaults={"award_key": badges.award_key(code, m.id)}
            )
        members.append(m.id)
    await badges.rerun(rules, TODAY)
    for mid in members:
        assert await held_codes(mid) == badges.due(defs, await badges.metrics(rules, mid, TODAY))
    assert await badges.rerun(rules, TODAY) == (0, 0)


async def test_badges_rerun_command(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'cli.sqlite3'}"
    await storage.migrate(url)
    await storage.open_db(url)
    try:
        m = await Member.create()
        await accept(m.id, 1)
        ghost = await Member.create()  # holds a badge it no longer earns
        await MemberBadge.create(
            member_id=ghost.id, code="accept_10", award_key=badges.award_key("accept_10", ghost.id)
        )
    finally:
        await storage.close_db()
    env = {**os.environ, "BOT_DATABASE_URL": url, "BOT_REDIS_URL": "", "PYTHONPATH": str(ROOT)}
    for expected in ("badges: granted 1, revoked 1", "badges: granted 0, revoked 0"):
        out = subprocess.run(
            [sys.executable, "-m", "bot", "badges", "rerun"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert expected in out.stdout
    await storage.open_db(url)
    try:
        assert await held_codes(m.id) == {"first_accept"} and await held_codes(ghost.id) == set()
        assert await BadgeEvent.filter(member_id=ghost.id, action="revoke", reason="rerun").count() == 1
    finally:
        await storage.close_db()
