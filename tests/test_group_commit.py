"""Group commit of the hot path's writes: grouped, all-or-nothing per job, on SQLite and PostgreSQL."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.transactions import in_transaction

from bot.core import storage
from bot.core.group_commit import GroupCommit, Statement, WriteJob, commit
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
) -> tuple[WriteJob, Member, ChannelAccount, TranscriptEntry]:
    member = Member(display_name=external_id, locale="zh_CN")
    account = ChannelAccount(channel="web", external_id=external_id)
    entry = TranscriptEntry(channel="web", direction="in", text="你好", msg_id=msg_id)
    job = WriteJob().insert(member).insert(account, member_id=member).insert(entry, member_id=member)
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
        assert member.pk and account.pk and entry.pk
        assert account.member_id == member.pk == entry.member_id
        stored = await ChannelAccount.get(id=account.pk).select_related("member")
        assert stored.external_id == account.external_id and stored.member.display_name == account.external_id
        assert (await TranscriptEntry.get(id=entry.pk)).member_id == member.pk  # type: ignore[attr-defined]
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
        assert all(s.instance is None or s.instance.pk is None for s in job.statements)


async def test_a_value_the_driver_cannot_bind_fails_its_job_alone(sqlite_orm: None) -> None:
    good = first_contact("fine")[0]
    bad = first_contact("broken")[0]
    first = bad.statements[0]
    bad.statements[0] = Statement(first.sql, (object(), *first.values[1:]), instance=first.instance)
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
    assert member.pk and await Member.all().count() == 1


async def test_updates_and_close_drains_what_is_queued(sqlite_orm: None) -> None:
    """SQLite's writer: close() commits what is queued, in order."""
    job, member, account, _entry = first_contact("upd")
    await commit(job)
    writes = GroupCommit()
    pending = [
        asyncio.create_task(writes.run(WriteJob().update(ChannelAccount, account.pk, chat_id=f"c{i}")))
        for i in range(10)
    ]
    await asyncio.sleep(0)
    await writes.close()
    assert all(t.done() and t.exception() is None for t in pending)
    assert (await ChannelAccount.get(id=account.pk)).chat_id == "c9"  # applied in order
    await writes.run(WriteJob().update(Member, member.pk, display_name="after close"))  # still durable
    assert (await Member.get(id=member.pk)).display_name == "after close"


async def test_a_job_inside_a_transaction_is_refused_not_deadlocked(db: str) -> None:
    writes = GroupCommit()
    async with in_transaction():
        with pytest.raises(OperationalError, match="cannot run inside a transaction"):
            await asyncio.wait_for(writes.run(first_contact("tx")[0]), timeout=5)
    await writes.close()
    assert await Member.all().count() == 0


async def test_a_reference_to_a_row_not_in_the_job_is_an_error(sqlite_orm: None) -> None:
    outsider = Member(display_name="x")
    with pytest.raises(ValueError, match="not inserted earlier"):
        WriteJob().insert(ChannelAccount(channel="web", external_id="y"), member_id=outsider)


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
