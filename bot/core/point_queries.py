"""Point lookups on the per-message hot path, without the query builder.

Every message asks the same few lookups (the sender's account with its member, the
member's live ticket). Through tortoise's query builder each cost ~0.4–0.7 ms of CPU,
most of it building the same SQL again; here the SQL is built once per model, filter and
dialect from the model's description (``bot.core.tables``), runs through the connection's
public ``execute_query`` and rows become instances through the public ``Model.construct``:
objects that read and save like the ORM's own.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, TypeVar, cast

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import MultipleObjectsReturned
from tortoise.models import Model

from bot.core.tables import Table, for_dialect, table

__all__ = ["Beside", "for_dialect", "get_or_none", "get_with"]

M = TypeVar("M", bound=Model)

_SQL: dict[tuple[Any, ...], str] = {}


def _client() -> BaseDBAsyncClient:
    return cast(BaseDBAsyncClient, connections.get("default"))  # the connections proxy is untyped


@dataclass(frozen=True)
class Beside:
    """A row read in the same query as the looked-up one: the ``model`` row whose unique
    ``column`` holds the related row's id (the member's live ticket beside their account)."""

    name: str
    model: type[Model]
    column: str


def _sql(
    dialect: str,
    own: Table[Any],
    related: tuple[str, Table[Any]] | None,
    keys: tuple[str, ...],
    beside: tuple[Beside, ...] = (),
) -> str:
    """SELECT with the model's (and optionally one foreign key's) columns, aliased t0__/t1__,
    and each ``beside`` row's, aliased t2__, t3__ … (LEFT JOIN: absent rows read as NULL)."""
    cache_key = (dialect, own.model, related[0] if related else None, keys, beside)
    hit = _SQL.get(cache_key)
    if hit is not None:
        return hit
    q = "`" if dialect == "mysql" else '"'
    select = own.select_list("t0", q)
    join = ""
    if related:
        name, rel = related
        select += rel.select_list("t1", q)
        join = f" JOIN {q}{rel.name}{q} t1 ON t1.{q}{rel.pk}{q} = t0.{q}{own.by_name[name + '_id'].db}{q}"
    anchor = "t1" if related else "t0"
    anchor_pk = related[1].pk if related else own.pk
    for i, b in enumerate(beside, start=2):
        t = table(b.model)
        select += t.select_list(f"t{i}", q)
        join += f" LEFT JOIN {q}{t.name}{q} t{i} ON t{i}.{q}{t.by_name[b.column].db}{q} = {anchor}.{q}{anchor_pk}{q}"
    where = " AND ".join(f"t0.{q}{own.by_name[k].db if k in own.by_name else k}{q} = ?" for k in keys)
    sql = _SQL[cache_key] = for_dialect(
        f"SELECT {', '.join(select)} FROM {q}{own.name}{q} t0{join} WHERE {where} LIMIT 2", dialect
    )
    return sql


async def get_or_none(model: type[M], related: tuple[str, type[Model]] | None = None, /, **eq: Any) -> M | None:
    """``model.get_or_none(**eq)`` (plus ``.select_related(name)`` for ``related=(name,
    RelatedModel)``), equality filters only.

    Raises ``MultipleObjectsReturned`` like the ORM when the filter is not unique."""
    found, _ = await get_with(model, related, (), **eq)
    return found


async def get_with(
    model: type[M], related: tuple[str, type[Model]] | None, beside: tuple[Beside, ...], /, **eq: Any
) -> tuple[M | None, dict[str, Model | None]]:
    """:func:`get_or_none`, and in the same query each ``beside`` row (None where there is
    none): one round trip to the database instead of one per lookup."""
    conn = _client()
    own: Table[M] = table(model)
    rel = (related[0], table(related[1])) if related else None
    keys = tuple(sorted(eq))
    sql = _sql(conn.capabilities.dialect, own, rel, keys, beside)
    _n, rows = await conn.execute_query(sql, [eq[k] for k in keys])
    if not rows:
        return None, {}
    if len(rows) > 1:
        raise MultipleObjectsReturned(model)
    row = rows[0]
    obj: M = own.from_row(row, "t0")
    if rel:
        setattr(obj, rel[0], rel[1].from_row(row, "t1"))
    extra: dict[str, Model | None] = {}
    for i, b in enumerate(beside, start=2):
        t = table(b.model)
        extra[b.name] = t.from_row(row, f"t{i}") if row[f"t{i}__{t.pk}"] is not None else None
    return obj, extra
