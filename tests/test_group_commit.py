"""Group commit of the hot path's writes: grouped, all-or-nothing per job, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.transactions import in_transaction

from bot.core import storage
from bot.core.group_commit import GroupCommit, Row, Statement, WriteJob, commit
from bot.core.models import ChannelAccount, Member, TranscriptEntry


@pytest_asyncio.fixture(params=["sqlite", "postgres"])
async def db(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[str]:
    if request.param == "postgres":
        url = request.getfixturevalue("fresh_postgres_url")
    else:
        url = f"sqlite://{tmp_path / 'gc.sqlite3'}"
    await storage.open_db(url, create_schema=True)
    try:
        yield request.param
    finally:
        await storage.close_db()


def first_contact(
    external_id: str, msg_id: str | None = None
) -> tuple[WriteJob, Row[Member], Row[ChannelAccount], Row[TranscriptEntry]]:
    job = WriteJob()
    member = job.insert(Member, display_name=external_id, locale="zh_CN")
    account = job.insert(ChannelAccount, channel="web", external_id=external_id, member_id=member)
    entry = job.insert(TranscriptEntry, channel="web", direction="in", text="你好", msg_id=msg_id, member_id=member)
    return job, member, account, entry


async def test_concurrent_jobs_commit_together_and_get_their_ids(db: str) -> None:
    writes = GroupCommit()
    jobs = [first_contact(f"u{i}", f"m{i}") for i in range(40)]
    try:
        await asyncio.gather(*(writes.run(job) for job, *_ in jobs))
    finally:
        await writes.close()
    if db == "sqlite":
        assert writes.jobs == 40 and writes.batches < 40  # grouped: fewer transactions than jobs
    else:
        assert writes.jobs == 0  # PostgreSQL: each job its own transaction, concurrently on the pool
    for _job, member, account, entry in jobs:
        assert member.id and account.id and entry.id
        acc = account.instance()
        assert acc.member_id == member.id == entry.instance().member_id  # type: ignore[attr-defined]
        stored = await ChannelAccount.get(id=account.id).select_related("member")
        assert stored.external_id == acc.external_id and stored.member.display_name == acc.external_id
        assert (await TranscriptEntry.get(id=entry.id)).member_id == member.id  # type: ignore[attr-defined]
    assert await Member.all().count() == 40


async def test_a_job_breaking_a_constraint_is_rolled_back_alone(db: str) -> None:
    writes = GroupCommit()
    await writes.run(first_contact("taken", "m-taken")[0])
    good = [first_contact(f"ok{i}")[0] for i in range(5)]
    dup_account = first_contact("taken")[0]  # UNIQUE(channel, external_id)
    dup_message = first_contact("fresh", "m-taken")[0]  # UNIQUE(channel, msg_id), after two good inserts
    results = await asyncio.gather(
        *(writes.run(j) for j in [*good[:2], dup_account, *good[2:], dup_message]), return_exceptions=True
    )
    await writes.close()
    assert [type(r) for r in results] == [type(None)] * 2 + [IntegrityError] + [type(None)] * 3 + [IntegrityError]
    # nothing of the failed jobs (not even their first, valid inserts), all of the others
    assert await ChannelAccount.filter(external_id="fresh").count() == 0
    assert await Member.all().count() == 1 + 5
    assert sorted(await ChannelAccount.all().values_list("external_id", flat=True)) == sorted(
        ["taken", *(f"ok{i}" for i in range(5))]
    )
    for job in (dup_account, dup_message):
        assert all(s.row is None or s.row.id is None for s in job.statements)


async def test_a_value_the_driver_cannot_bind_fails_its_job_alone(sqlite_orm: None) -> None:
    good = first_contact("fine")[0]
    bad = first_contact("broken")[0]
    first = bad.statements[0]
    bad.statements[0] = Statement(first.sql, (object(), *first.values[1:]), row=first.row)
    writes = GroupCommit()
    results = await asyncio.gather(writes.run(bad), writes.run(good), return_exceptions=True)
    await writes.close()
    assert isinstance(results[0], OperationalError) and results[1] is None
    assert await ChannelAccount.filter(external_id="broken").count() == 0
    assert await ChannelAccount.filter(external_id="fine").count() == 1


async def test_a_failed_transaction_fails_its_batch_whole_and_the_writer_goes_on(sqlite_orm: None) -> None:
    broken = WriteJob()
    broken.statements.append(Statement('INSERT INTO "no_such_table" VALUES (?)', (1,)))
    writes = GroupCommit()
    together = first_contact("same-batch")[0]
    results = await asyncio.gather(writes.run(broken), writes.run(together), return_exceptions=True)
    assert [type(r) for r in results] == [OperationalError, OperationalError]
    assert await Member.all().count() == 0  # nothing half-written
    later, member, *_ = first_contact("later")
    await writes.run(later)
    await writes.close()
    assert member.id and await Member.all().count() == 1


async def test_updates_and_close_drains_what_is_queued(sqlite_orm: None) -> None:
    """SQLite's writer: close() commits what is queued, in order."""
    job, member, account, _entry = first_contact("upd")
    await commit(job)
    writes = GroupCommit()
    pending = [
        asyncio.create_task(writes.run(WriteJob().update(ChannelAccount, account.id, chat_id=f"c{i}")))
        for i in range(10)
    ]
    await asyncio.sleep(0)
    await writes.close()
    assert all(t.done() and t.exception() is None for t in pending)
    assert (await ChannelAccount.get(id=account.id)).chat_id == "c9"  # applied in order
    await writes.run(WriteJob().update(Member, member.id, display_name="after close"))  # still durable
    assert (await Member.get(id=member.id)).display_name == "after close"


async def test_a_job_inside_a_transaction_is_refused_not_deadlocked(db: str) -> None:
    writes = GroupCommit()
    async with in_transaction():
        with pytest.raises(OperationalError, match="cannot run inside a transaction"):
            await asyncio.wait_for(writes.run(first_contact("tx")[0]), timeout=5)
    await writes.close()
    assert await Member.all().count() == 0


async def test_a_reference_to_a_row_not_in_the_job_is_an_error(sqlite_orm: None) -> None:
    outsider = WriteJob().insert(Member, display_name="x")
    with pytest.raises(ValueError, match="not inserted earlier"):
        WriteJob().insert(ChannelAccount, channel="web", external_id="y", member_id=outsider)


async def test_rows_are_stored_and_read_back_as_the_orm_stores_them(db: str) -> None:
    """A job's INSERT (columns, defaults, conversions from the model's description) and
    the instance it hands back equal what ``Model.create`` stores and the ORM reads."""
    when = datetime(2026, 12, 5, 8, 30, 15, 123456, tzinfo=timezone(timedelta(hours=8)))
    member = await Member.create(display_name="orm", locale="zh_TW", tags=["vip", "流量"], last_seen_at=when)
    job = WriteJob()
    ours = job.insert(Member, display_name="job", locale="zh_TW", tags=["vip", "流量"], last_seen_at=when)
    entry = job.insert(
        TranscriptEntry,
        member_id=ours,
        channel="web",
        direction="out",
        text="答",
        item_id=3,
        confidence=0.5,
        payload={"choices": ["a:1"], "labels": ["选项"]},
    )
    await commit(job)
    theirs = await TranscriptEntry.create(
        member_id=member.id,
        channel="web",
        direction="out",
        text="答",
        item_id=3,
        confidence=0.5,
        payload={"choices": ["a:1"], "labels": ["选项"]},
    )
    fields = [f for f in Member._meta.db_fields if f not in ("id", "display_name", "created_at")]
    a, b = await Member.get(id=ours.id), await Member.get(id=member.id)
    assert {f: getattr(a, f) for f in fields} == {f: getattr(b, f) for f in fields}
    assert a.created_at.tzinfo and abs((a.created_at - b.created_at).total_seconds()) < 60
    handed = ours.instance()
    assert {f: getattr(handed, f) for f in fields} == {f: getattr(a, f) for f in fields}
    assert handed.created_at == a.created_at and handed.pk == a.pk
    await handed.save(update_fields=["nickname"])  # an instance handed back saves like any other
    cols = [f for f in TranscriptEntry._meta.db_fields if f not in ("id", "member_id", "created_at")]
    x, y = await TranscriptEntry.get(id=entry.id), await TranscriptEntry.get(id=theirs.id)
    assert {f: getattr(x, f) for f in cols} == {f: getattr(y, f) for f in cols}
    assert x.member_id == ours.id  # type: ignore[attr-defined]


@hsettings(max_examples=25, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.tuples(st.integers(0, 5), st.integers(0, 7)), min_size=1, max_size=30))
async def test_grouped_outcome_equals_one_job_at_a_time(sqlite_orm: None, plan: list[tuple[int, int]]) -> None:
    """Whatever the mix of clashing first contacts and message ids, the rows written are
    exactly those of running the jobs one by one in order, each all or nothing."""
    await TranscriptEntry.all().delete()
    await ChannelAccount.all().delete()
    await Member.all().delete()
    writes = GroupCommit(max_batch=7)
    tag = f"{id(plan)}"
    results = await asyncio.gather(
        *(writes.run(first_contact(f"{tag}-{u}", f"{tag}-{m}")[0]) for u, m in plan), return_exceptions=True
    )
    await writes.close()
    users: set[int] = set()
    msgs: set[int] = set()
    expected = []
    for u, m in plan:
        ok = u not in users and m not in msgs
        if ok:
            users.add(u)
            msgs.add(m)
        expected.append(ok)
    assert [r is None for r in results] == expected
    assert not [r for r in results if r is not None and not isinstance(r, IntegrityError)]
    assert await Member.all().count() == len(users) == await ChannelAccount.all().count()
    assert sorted(await TranscriptEntry.all().values_list("msg_id", flat=True)) == sorted(f"{tag}-{m}" for m in msgs)
