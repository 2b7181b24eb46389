"""Member merges as properties: points preserved, nothing lost, merge twice = merge once,
unmerge puts back what moved (the ORM on SQLite, every registered model)."""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timezone

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from bot.core.identity.merge import MergeError, Merger, member_links
from bot.core.identity.models import MemberMerge
from bot.core.models import ChannelAccount, Member, OutboxMessage, TranscriptEntry
from community.consent import OptOutEvent
from community.inbox.models import Ticket
from gamification import ledger
from gamification.merge import LedgerMergeHook
from gamification.models import Balance, LedgerEntry, MemberBadge
from tests.gamification_helpers import standalone

MERGER = Merger([LedgerMergeHook(standalone())])
BADGES = ("self_service", "helper", "streak")

side = st.fixed_dictionaries(
    {
        "awards": st.lists(st.integers(min_value=1, max_value=50), max_size=4),
        "spend": st.integers(min_value=0, max_value=60),
        "reverse_first": st.booleans(),  # after spending: may leave a debt
        "held": st.integers(min_value=0, max_value=20),
        "messages": st.integers(min_value=0, max_value=3),
        "open_ticket": st.booleans(),
        "badges": st.sets(st.sampled_from(BADGES)),
        "opted_out": st.booleans(),
        "tags": st.sets(st.sampled_from(["vip", "5g", "tenure:5y"])),
    }
)


async def make_member(n: str, spec: dict) -> Member:
    m = await Member.create(display_name=n, tags=sorted(spec["tags"]), opted_out=spec["opted_out"])
    await ChannelAccount.create(member=m, channel="web", external_id=f"{n}-{m.id}")
    await ChannelAccount.create(member=m, channel="telegram", external_id=f"{m.id}")
    entries = []
    for i, amount in enumerate(spec["awards"]):
        entries.append((await ledger.award(m.id, "answer_helpful", amount, key=f"{m.id}:a{i}")).entry_id)
    if spec["spend"]:
        try:
            await ledger.spend(m.id, spec["spend"], key=f"{m.id}:s")
        except ledger.InsufficientPoints:
            pass
    if spec["reverse_first"] and entries:
        await ledger.reverse(entries[0])
    if spec["held"]:
        await ledger.award(m.id, "answer_helpful", spec["held"], key=f"{m.id}:h", policy=_hold_all)
    for i in range(spec["messages"]):
        await TranscriptEntry.create(member=m, channel="web", direction="in", text=f"{n} {i}", msg_id=f"{m.id}#{i}")
    due = datetime.now(timezone.utc)
    if spec["open_ticket"]:
        await Ticket.create(
            member=m, channel="web", reason="human", open_key=m.id, first_response_due=due, resolution_due=due
        )
    await Ticket.create(
        member=m, channel="web", reason="human", status="closed", first_response_due=due, resolution_due=due
    )
    for code in spec["badges"]:
        await MemberBadge.create(member=m, code=code, award_key=f"badge:{code}:{m.id}")
    if spec["opted_out"]:
        await OptOutEvent.create(member=m, channel="web", action="opt_out", source_text="stop")
    await OutboxMessage.create(channel="web", address=f"{n}-{m.id}", member=m, payload={"text": "hi"})
    return m


async def _hold_all(conn, delta):  # type: ignore[no-untyped-def]
    return ledger.Grant(amount=0, held=delta)


async def net(member_id: int) -> tuple[int, int]:
    b = await ledger.balance_of(member_id)
    return b.balance - b.debt, b.held


async def owned(member_id: int) -> Counter:
    """Every row that refers to the member, by model and field (the ledger excepted)."""
    out: Counter = Counter()
    for link in member_links():
        if getattr(link.model, "merge_by_hook", None) or getattr(link.model, "merge_skip", False):
            continue
        out[(link.model.__name__, link.field)] = await link.model.filter(**{f"{link.field}_id": member_id}).count()
    return out


async def check_ledger(member_id: int) -> None:
    bal = await Balance.get(member_id=member_id)
    granted = sum(await LedgerEntry.filter(member_id=member_id).values_list("granted", flat=True))
    held = sum(await LedgerEntry.filter(member_id=member_id).values_list("held", flat=True))
    assert bal.balance - bal.debt == granted and bal.held == held and bal.balance >= 0 and bal.debt >= 0


@hsettings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=side, b=side)
async def test_merge_preserves_points_and_rows_and_is_idempotent(sqlite_orm: None, a: dict, b: dict) -> None:
    src, dst = await make_member("src", a), await make_member("dst", b)
    before_points = [await net(src.id), await net(dst.id)]
    rows_before = await owned(src.id) + await owned(dst.id)
    entries_before = await LedgerEntry.all().count()

    record = await MERGER.merge(src.id, dst.id, via="staff", actor="staff:test")
    again = await MERGER.merge(src.id, dst.id, via="staff", actor="staff:test")
    assert again.id == record.id, (again.id, record.id)
    assert await MemberMerge.filter(source_id=src.id).count() == 1, await MemberMerge.all().values()
    assert await LedgerEntry.all().count() == entries_before + 2  # one out, one in, once

    # points: the sum is preserved and all of it is now the target's
    after_src, after_dst = await net(src.id), await net(dst.id)
    assert after_src == (0, 0)
    assert after_dst == (before_points[0][0] + before_points[1][0], before_points[0][1] + before_points[1][1])
    for m in (src.id, dst.id):
        await check_ledger(m)
    # nothing lost: every row is still there, on the target unless a unique rule kept it
    rows_after_src, rows_after_dst = await owned(src.id), await owned(dst.id)
    assert rows_after_src + rows_after_dst == rows_before
    kept = sum(len(v) for f in record.kept.values() for v in f.values())
    assert sum(rows_after_src.values()) == kept
    assert await ChannelAccount.filter(member_id=dst.id).count() == 4
    assert await TranscriptEntry.filter(member_id=dst.id).count() == a["messages"] + b["messages"]
    # unique rules: one live ticket, one badge of each kind
    assert await Ticket.filter(open_key=dst.id).count() == (1 if a["open_ticket"] or b["open_ticket"] else 0)
    codes = await MemberBadge.filter(member_id=dst.id).values_list("code", flat=True)
    assert sorted(codes) == sorted(a["badges"] | b["badges"])
    target = await Member.get(id=dst.id)
    assert target.opted_out == (a["opted_out"] or b["opted_out"])
    assert set(target.tags) == a["tags"] | b["tags"]
    assert (await Member.get(id=src.id)).status == "merged"
    assert await MERGER.resolve(src.id) == dst.id

    # unmerge: every moved row and every point back where it was
    undone = await MERGER.unmerge(record.id, actor="staff:test")
    assert undone.status == "unmerged" and (await MERGER.unmerge(record.id)).status == "unmerged"
    assert [await net(src.id), await net(dst.id)] == before_points
    assert await owned(src.id) + await owned(dst.id) == rows_before
    assert await ChannelAccount.filter(member_id=src.id).count() == 2
    assert await Ticket.filter(open_key=src.id).count() == int(a["open_ticket"])
    assert (await Member.get(id=src.id)).status == "active"
    for m in (src.id, dst.id):
        await check_ledger(m)


async def test_merge_refusals(sqlite_orm: None) -> None:
    a = await Member.create(phone="+8613800138000")
    b = await Member.create(phone="+8613900139000")
    c = await Member.create()
    with pytest.raises(MergeError):
        await MERGER.merge(a.id, a.id, via="staff")
    with pytest.raises(MergeError):
        await MERGER.merge(a.id, b.id, via="staff")  # two different verified people
    with pytest.raises(MergeError):
        await Merger().merge(c.id, a.id, via="staff")  # without the ledger's hook: refuse, move nothing
    assert await MemberMerge.all().count() == 0
    await MERGER.merge(c.id, a.id, via="staff")
    with pytest.raises(MergeError):
        await MERGER.merge(c.id, b.id, via="staff")  # already merged elsewhere
    # merging into a merged member follows to the member it now is
    d = await Member.create()
    rec = await MERGER.merge(d.id, c.id, via="staff")
    assert rec.target_id == a.id


async def test_migration_sets_pre_session_web_accounts_apart(tmp_path) -> None:  # type: ignore[no-untyped-def]
    """Web ids a client chose before server sessions can be claimed by no session and no
    operator user after the upgrade."""
    import sqlite3

    from tortoise import Tortoise
    from tortoise.migrations.api import migrate

    from bot.core import storage

    path = tmp_path / "up.sqlite3"
    config = storage.tortoise_config(f"sqlite://{path}")
    try:
        await migrate(config=config, app_labels=["models"], target="models.0003_member_phone")
    finally:
        await Tortoise.close_connections()
    db = sqlite3.connect(path)
    db.execute(
        "INSERT INTO member (display_name, locale, locale_explicit, tags, status, is_staff, opted_out, "
        "created_at) VALUES ('', 'zh_CN', 0, '[]', 'active', 0, 0, '2026-01-01')"
    )
    for channel, ext in (("web", "carol"), ("web", "web-1a2b"), ("telegram", "carol")):
        db.execute(
            "INSERT INTO channel_account (member_id, channel, external_id, chat_id, active, inactive_reason, "
            "created_at) VALUES (1, ?, ?, '', 1, '', '2026-01-01')",
            (channel, ext),
        )
    db.commit()
    db.close()
    await storage.migrate(f"sqlite://{path}")
    db = sqlite3.connect(path)
    rows = sorted(db.execute("SELECT channel, external_id FROM channel_account").fetchall())
    db.close()
    assert rows == [("telegram", "carol"), ("web", "legacy/carol"), ("web", "legacy/web-1a2b")]


async def test_merge_and_unmerge_on_postgresql(fresh_postgres_url: str) -> None:
    from bot.core import storage

    await storage.open_db(fresh_postgres_url, create_schema=True)
    try:
        spec = {
            "awards": [20, 5],
            "spend": 10,
            "reverse_first": True,
            "held": 3,
            "messages": 2,
            "open_ticket": True,
            "badges": {"helper"},
            "opted_out": False,
            "tags": {"vip"},
        }
        src = await make_member("src", spec)
        dst = await make_member("dst", {**spec, "reverse_first": False, "badges": {"helper", "streak"}})
        before = [await net(src.id), await net(dst.id)]
        rows = await owned(src.id) + await owned(dst.id)
        record = await MERGER.merge(src.id, dst.id, via="staff")
        assert (await MERGER.merge(src.id, dst.id, via="staff")).id == record.id
        assert await net(dst.id) == (before[0][0] + before[1][0], before[0][1] + before[1][1])
        assert await owned(src.id) + await owned(dst.id) == rows
        assert record.kept == {"MemberBadge": {"member": [(await MemberBadge.get(member_id=src.id, code="helper")).id]}}
        await MERGER.unmerge(record.id)
        assert [await net(src.id), await net(dst.id)] == before
        for m in (src.id, dst.id):
            await check_ledger(m)
    finally:
        await storage.close_db()
