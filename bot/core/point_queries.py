"""Point lookups on the per-message hot path, without the query builder.

Every message asks the same few lookups (the sender's account with its member, the
member's live ticket). Through tortoise's query builder each cost ~0.4–0.7 ms of CPU,
most of it building the same SQL again; here the SQL is built once per model, filter and
dialect from the model's description (``bot.core.tables``), runs through the connection's
public ``execute_query`` and rows become instances through the public ``Model.construct``:
objects that read and save like the ORM's own.
"""

from __future__ import annotations

from typing import Any, TypeVar, cast

from tortoise import connections
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import MultipleObjectsReturned
from tortoise.models import Model

from bot.core.tables import Table, for_dialect, table

__all__ = ["for_dialect", "get_or_none"]

M = TypeVar("M", bound=Model)

_SQL: dict[tuple[Any, ...], str] = {}


def _client() -> BaseDBAsyncClient:
    return cast(BaseDBAsyncClient, connections.get("default"))  # the connections proxy is untyped


def _sql(dialect: str, own: Table[Any], related: tuple[str, Table[Any]] | None, keys: tuple[str, ...]) -> str:
    """SELECT with the model's (and optionally one foreign key's) columns, aliased t0__/t1__."""
    cache_key = (dialect, own.model, related[0] if related else None, keys)
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
    where = " AND ".join(f"t0.{q}{own.by_name[k].db if k in own.by_name else k}{q} = ?" for k in keys)
    sql = _SQL[cache_key] = for_dialect(
        f"SELECT {', '.join(select)} FROM {q}{own.name}{q} t0{join} WHERE {where} LIMIT 2", dialect
    )
    return sql


async def get_or_none(model: type[M], related: tuple[str, type[Model]] | None = None, /, **eq: Any) -> M | None:
    """``model.get_or_none(**eq)`` (plus ``.select_related(name)`` for ``related=(name,
    RelatedModel)``), equality filters only.

    Raises ``MultipleObjectsReturned`` like the ORM when the filter is not unique."""
    conn = _client()
    own: Table[M] = table(model)
    rel = (related[0], table(related[1])) if related else None
    keys = tuple(sorted(eq))
    sql = _sql(conn.capabilities.dialect, own, rel, keys)
    _n, rows = await conn.execute_query(sql, [eq[k] for k in keys])
    if not rows:
        return None
    if len(rows) > 1:
        raise MultipleObjectsReturned(model)
    row = rows[0]
    obj: M = own.from_row(row, "t0")
    if rel:
        setattr(obj, rel[0], rel[1].from_row(row, "t1"))
    return obj
