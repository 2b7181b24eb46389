"""Point lookups on the per-message hot path, without the query builder.

Every message asks the same few lookups (the sender's account with its member,
the member's live ticket). Through tortoise's query builder each costs ~0.4–0.7
ms of CPU, most of it building the same SQL again; here the SQL is built once per
model, filter and database dialect, and rows still become model instances through
tortoise's own ``_init_from_db`` — the same objects the ORM would return.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, TypeVar, cast

from tortoise.fields import DatetimeField
from tortoise.fields.relational import RelationalField
from tortoise.models import Model

M = TypeVar("M", bound=Model)

_SQL: dict[tuple[Any, ...], tuple[str, list[str], list[str]]] = {}


def for_dialect(sql: str, dialect: str) -> str:
    """SQL written with ``?`` placeholders, for the connection's dialect (PostgreSQL
    numbers them ``$1, $2 …``, MySQL wants ``%s``). ``?`` must only be placeholders."""
    if dialect == "mysql":
        return sql.replace("?", "%s")
    if dialect != "postgres":
        return sql
    parts = sql.split("?")
    return "".join(p + (f"${i}" if i < len(parts) else "") for i, p in enumerate(parts, start=1))


def _columns(model: type[Model]) -> list[str]:
    return list(model._meta.fields_db_projection.values())


_DATETIME_COLUMNS: dict[type[Model], tuple[str, ...]] = {}


def _from_row(model: type[M], row: dict[str, Any], prefix: str, cols: list[str]) -> M:
    """``model._init_from_db`` for one row, with SQLite's text timestamps parsed by the C
    ``datetime.fromisoformat`` first: tortoise parses them with the pure-Python iso8601
    package, which was a third of a point query's CPU. tortoise still applies the zone."""
    values = {c: row[prefix + c] for c in cols}
    dt_cols = _DATETIME_COLUMNS.get(model)
    if dt_cols is None:
        meta = model._meta
        dt_cols = _DATETIME_COLUMNS[model] = tuple(
            meta.fields_db_projection[name]
            for name, f in meta.fields_map.items()
            if isinstance(f, DatetimeField) and name in meta.fields_db_projection
        )
    for c in dt_cols:
        v = values[c]
        if isinstance(v, str):
            try:
                values[c] = datetime.fromisoformat(v)
            except ValueError:
                pass  # left to tortoise's own parser
    return model._init_from_db(**values)


def _sql(conn: Any, model: type[Model], related: str | None, keys: tuple[str, ...]) -> tuple[str, list[str], list[str]]:
    """SELECT with the model's (and optionally one foreign key's) columns, aliased t0__/t1__."""
    cache_key = (conn.capabilities.dialect, model, related, keys)
    hit = _SQL.get(cache_key)
    if hit is not None:
        return hit
    dialect = conn.capabilities.dialect
    q = "`" if dialect == "mysql" else '"'
    meta = model._meta
    cols = _columns(model)
    select = [f"t0.{q}{c}{q} AS {q}t0__{c}{q}" for c in cols]
    join = ""
    rel_cols: list[str] = []
    if related:
        fk = cast("RelationalField[Model]", meta.fields_map[related])  # fields_map holds plain Fields
        rel_model = fk.related_model
        rel_cols = _columns(rel_model)
        select += [f"t1.{q}{c}{q} AS {q}t1__{c}{q}" for c in rel_cols]
        join = (
            f" JOIN {q}{rel_model._meta.db_table}{q} t1 ON t1.{q}{rel_model._meta.db_pk_column}{q}"
            f" = t0.{q}{fk.source_field}{q}"
        )
    where = []
    for key in keys:
        col = meta.fields_db_projection[key] if key in meta.fields_db_projection else meta.fields_map[key].source_field
        where.append(f"t0.{q}{col}{q} = ?")
    sql = for_dialect(
        f"SELECT {', '.join(select)} FROM {q}{meta.db_table}{q} t0{join} WHERE {' AND '.join(where)} LIMIT 2", dialect
    )
    out = (sql, cols, rel_cols)
    _SQL[cache_key] = out
    return out


async def get_or_none(model: type[M], related: str | None = None, /, **eq: Any) -> M | None:
    """``model.get_or_none(**eq)`` (plus ``.select_related(related)``), equality filters only.

    Raises ``MultipleObjectsReturned`` like the ORM when the filter is not unique."""
    conn = model._meta.db
    keys = tuple(sorted(eq))
    sql, cols, rel_cols = _sql(conn, model, related, keys)
    _n, rows = await conn.execute_query(sql, [eq[k] for k in keys])
    if not rows:
        return None
    if len(rows) > 1:
        from tortoise.exceptions import MultipleObjectsReturned

        raise MultipleObjectsReturned(model)
    row = dict(rows[0])
    obj = _from_row(model, row, "t0__", cols)
    if related:
        rel_model = cast("RelationalField[Model]", model._meta.fields_map[related]).related_model
        setattr(obj, related, _from_row(rel_model, row, "t1__", rel_cols))
    return obj
