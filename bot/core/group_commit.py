"""Group commit: the hot path's writes from many messages in one transaction.

Why: on SQLite every statement is a hop to aiosqlite's driver thread, and an open
transaction keeps the one shared connection locked across event-loop turns. A first
contact (member, account, inbound transcript) plus its reply took 11 such hops, and
under load the connection, not the CPU, capped the answered messages per second.

Here a message's writes are one `WriteJob`. A writer task runs every job queued while
the previous batch was running in a single transaction (on SQLite in one hop to the
driver thread), each job inside its own savepoint: a job that breaks a constraint (a
retried message id, a concurrent first contact) is rolled back alone and its caller gets
tortoise's `IntegrityError`, the others commit. `GroupCommit.run` returns after COMMIT,
so nothing is acknowledged before it is durable; a lone message is written at once,
batches only form when messages arrive while a commit is in flight.

The SQL, defaults and value conversions come from the model's description
(``bot.core.tables``), so a row is stored as ``Model.create`` would store it.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import sqlite3
from collections import deque
from dataclasses import dataclass
from typing import Any, Generic, TypeVar, cast

from asyncpg.exceptions import IntegrityConstraintViolationError
from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient, TransactionalDBClient
from tortoise.exceptions import IntegrityError, OperationalError
from tortoise.models import Model

from bot.core import metrics
from bot.core.clock import utcnow
from bot.core.tables import Table, for_dialect, table

log = logging.getLogger(__name__)

M = TypeVar("M", bound=Model)

MAX_BATCH = 256  # jobs per transaction: bounds how long one COMMIT keeps others waiting


class Row(Generic[M]):
    """A row a job inserts. After COMMIT it has its ``id``, and :meth:`instance` gives it
    as the model instance tortoise would have returned."""

    __slots__ = ("table", "values", "id")

    def __init__(self, table: Table[M], values: dict[str, Any]) -> None:
        self.table = table
        self.values = values  # every column's Python value (references: the Row)
        self.id: Any = None

    def instance(self) -> M:
        if self.id is None:
            raise OperationalError(f"{self.table.name}: the row is not committed")
        values = {k: (v.id if isinstance(v, Row) else v) for k, v in self.values.items()}
        return self.table.model.construct(_saved_in_db=True, **{self.table.pk: self.id}, **values)


@dataclass(frozen=True, slots=True)
class Statement:
    """One INSERT or UPDATE. Each of ``refs`` (position in ``values``, index of an earlier
    INSERT of the same job) is a foreign key to a row created in the same job: that row's
    new id goes into the values at COMMIT."""

    sql: str
    values: tuple[Any, ...]
    refs: tuple[tuple[int, int], ...] = ()
    row: Row[Any] | None = None  # an INSERT's row: gets its id after COMMIT


_INSERT: dict[tuple[str, type[Model]], str] = {}
_UPDATE: dict[tuple[str, type[Model], tuple[str, ...]], str] = {}


def _client() -> BaseDBAsyncClient:
    return cast(BaseDBAsyncClient, connections.get("default"))  # the connections proxy is untyped


def _insert_sql(dialect: str, t: Table[Any]) -> str:
    key = (dialect, t.model)
    sql = _INSERT.get(key)
    if sql is None:
        cols = ", ".join(f'"{c.db}"' for c in t.columns)
        marks = ", ".join("?" for _ in t.columns)
        returning = f' RETURNING "{t.pk}"' if dialect == "postgres" else ""
        sql = _INSERT[key] = for_dialect(f'INSERT INTO "{t.name}" ({cols}) VALUES ({marks}){returning}', dialect)
    return sql


class WriteJob:
    """The writes of one message, all or nothing."""

    __slots__ = ("statements", "_dialect", "_now")

    def __init__(self, dialect: str | None = None) -> None:
        self.statements: list[Statement] = []
        self._dialect: str = dialect or _client().capabilities.dialect
        self._now = utcnow()

    def insert(self, model: type[M], **values: Any) -> Row[M]:
        """INSERT a ``model`` row; a value that is a :class:`Row` inserted earlier in this job
        (``member_id=member_row``) becomes that row's id. Columns not given take the model's
        defaults, as ``Model.create`` would."""
        t = table(model)
        row = Row(t, t.values_for_insert(values, self._now))
        bound: list[Any] = []
        refs: list[tuple[int, int]] = []
        dialect = self._dialect
        for position, column in enumerate(t.columns):
            value = row.values[column.name]
            if isinstance(value, Row):
                index = next((i for i, s in enumerate(self.statements) if s.row is value), None)
                if index is None:
                    raise ValueError(f"{column.name}: {value.table.name} row is not inserted earlier in this job")
                refs.append((position, index))
                bound.append(None)
            else:
                bound.append(column.to_db(value, dialect))
        self.statements.append(Statement(_insert_sql(dialect, t), tuple(bound), tuple(refs), row))
        return row

    def update(self, model: type[Model], pk: Any, **changes: Any) -> WriteJob:
        """UPDATE one row by primary key."""
        names = tuple(sorted(changes))
        dialect = self._dialect
        key = (dialect, model, names)
        t = table(model)
        sql = _UPDATE.get(key)
        if sql is None:
            sets = ", ".join(f'"{t.by_name[n].db}" = ?' for n in names)
            sql = _UPDATE[key] = for_dialect(f'UPDATE "{t.name}" SET {sets} WHERE "{t.pk}" = ?', dialect)
        values = tuple(t.by_name[n].to_db(changes[n], dialect) for n in names) + (pk,)
        self.statements.append(Statement(sql, values))
        return self


def _resolved(statement: Statement, ids: list[Any]) -> tuple[Any, ...] | list[Any]:
    if not statement.refs:
        return statement.values
    values = list(statement.values)
    for position, index in statement.refs:
        values[position] = ids[index]
    return values


# errors caused by one job's own statements (a constraint, a value the driver cannot bind);
# anything else (locked, disk, corrupt) fails the whole transaction
_JOB_ERRORS = (sqlite3.IntegrityError, sqlite3.InterfaceError, sqlite3.ProgrammingError, sqlite3.DataError)


def _run_sqlite(conn: sqlite3.Connection, jobs: list[WriteJob]) -> list[list[Any] | sqlite3.Error]:
    """All jobs in one transaction, on aiosqlite's thread (one hop for the whole batch)."""
    out: list[list[Any] | sqlite3.Error] = []
    conn.execute("BEGIN IMMEDIATE")
    try:
        for job in jobs:
            conn.execute("SAVEPOINT everycsr_job")
            ids: list[Any] = []
            try:
                for statement in job.statements:
                    cursor = conn.execute(statement.sql, _resolved(statement, ids))
                    ids.append(cursor.lastrowid if statement.row is not None else None)
            except _JOB_ERRORS as exc:  # this job's own fault: roll it back alone
                conn.execute("ROLLBACK TO everycsr_job")
                out.append(exc)
            else:
                out.append(ids)
            conn.execute("RELEASE everycsr_job")
        conn.execute("COMMIT")
    except BaseException:
        if conn.in_transaction:
            conn.execute("ROLLBACK")
        raise
    return out


async def _run_postgres(client: BaseDBAsyncClient, job: WriteJob) -> list[Any] | Exception:
    """One job in its own transaction on a pool connection."""
    ids: list[Any] = []
    try:
        async with client.acquire_connection() as con, con.transaction():
            for statement in job.statements:
                values = _resolved(statement, ids)
                if statement.row is not None:
                    row = await con.fetchrow(statement.sql, *values)  # INSERT … RETURNING id
                    ids.append(row[0] if row else None)
                else:
                    await con.execute(statement.sql, *values)
                    ids.append(None)
    except IntegrityConstraintViolationError as exc:
        return cast(Exception, exc)  # asyncpg is untyped
    return ids


def _grouped(client: BaseDBAsyncClient) -> bool:
    """Only SQLite groups jobs: its one connection runs one statement at a time anyway.
    PostgreSQL runs each job in its own transaction, concurrently on the pool: a batch
    there would make unrelated messages wait on each other's row locks, and two workers'
    batches creating the same new accounts in different orders would deadlock."""
    return client.capabilities.dialect == "sqlite"


async def _run_batch(jobs: list[WriteJob]) -> list[list[Any] | Exception]:
    client = _client()
    dialect = client.capabilities.dialect
    if dialect == "sqlite":
        async with client.acquire_connection() as aconn:  # tortoise's lock on the one connection
            try:
                # aiosqlite runs a callable on its thread; the whole batch is one hop
                return cast(
                    list[list[Any] | Exception],  # aiosqlite's _execute is untyped
                    await aconn._execute(_run_sqlite, aconn._conn, jobs),
                )  # noqa: SLF001
            except sqlite3.OperationalError as exc:
                raise OperationalError(exc) from exc
    if dialect == "postgres":
        return [await _run_postgres(client, job) for job in jobs]
    raise OperationalError(f"write jobs do not support the {dialect} dialect")


class GroupCommit:
    """One writer per process; `run` a job and get back once it is committed (grouped
    with other messages' jobs on SQLite, its own transaction on PostgreSQL)."""

    def __init__(self, max_batch: int = MAX_BATCH) -> None:
        self.max_batch = max_batch
        self._queue: deque[tuple[WriteJob, asyncio.Future[None]]] = deque()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closing = False
        self.batches = 0  # transactions committed (or failed): how well writes are grouped
        self.jobs = 0
        self._dialect: str | None = None

    def job(self) -> WriteJob:
        """A new job for this process's database (its dialect looked up once)."""
        if self._dialect is None:
            self._dialect = _client().capabilities.dialect
        return WriteJob(self._dialect)

    async def run(self, job: WriteJob) -> None:
        """Commit ``job``; its inserted rows then carry their ids.

        Raises tortoise's ``IntegrityError`` when the job broke a constraint (nothing of it
        was written). Never call it inside a transaction: the job commits on its own."""
        client = _outside_transaction()
        if self._closing or not _grouped(client):  # shutting down: still durable, just not grouped
            await commit(job)
            return
        if not job.statements:
            return
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self._queue.append((job, future))
        self._wake.set()
        if self._task is None:
            # an empty context: the writer must never inherit a caller's transaction
            self._task = asyncio.create_task(self._write(), name="group-commit", context=contextvars.Context())
        await future

    async def close(self) -> None:
        """Commit what is queued, then stop."""
        self._closing = True
        self._wake.set()
        if self._task is not None:
            await self._task
            self._task = None

    async def _write(self) -> None:
        while True:
            if not self._queue:
                if self._closing:
                    return
                self._wake.clear()
                await self._wake.wait()
                continue
            batch = [self._queue.popleft() for _ in range(min(self.max_batch, len(self._queue)))]
            try:
                await self._commit(batch)
            except Exception as exc:  # the whole transaction failed: every caller hears why
                log.warning("group commit of %d jobs failed: %s", len(batch), exc)
                for _, future in batch:
                    if not future.done():
                        future.set_exception(exc)

    async def _commit(self, batch: list[tuple[WriteJob, asyncio.Future[None]]]) -> None:
        jobs = [job for job, _ in batch]
        self.batches += 1
        self.jobs += len(jobs)
        metrics.GROUP_COMMIT_JOBS.observe(len(jobs))
        results = await _run_batch(jobs)
        for (job, future), result in zip(batch, results, strict=True):
            if future.done():  # its caller went away; the rows are written all the same
                continue
            try:
                _apply(job, result)
            except (IntegrityError, OperationalError) as exc:
                future.set_exception(exc)
            else:
                future.set_result(None)


def _apply(job: WriteJob, result: list[Any] | Exception) -> None:
    """Give a committed job's rows their ids, or raise why it was rolled back."""
    if isinstance(result, (sqlite3.IntegrityError, IntegrityConstraintViolationError)):
        raise IntegrityError(result)
    if isinstance(result, Exception):
        raise OperationalError(result)
    for statement, new_id in zip(job.statements, result, strict=True):
        if statement.row is not None:
            statement.row.id = new_id


def _outside_transaction() -> BaseDBAsyncClient:
    """The connection, refused inside a transaction: a job commits on its own, and on
    SQLite it would wait for the lock its caller holds."""
    client = _client()
    if isinstance(client, TransactionalDBClient):
        raise OperationalError("a write job cannot run inside a transaction")
    return client


async def commit(job: WriteJob) -> None:
    """Commit one job in its own transaction, now (no grouping)."""
    _outside_transaction()
    if job.statements:
        _apply(job, (await _run_batch([job]))[0])
