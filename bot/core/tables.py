"""A model's table as the hot path's plain SQL sees it, from tortoise's public ``Model.describe()``.

Why: every message reads an account and a ticket and writes transcript rows. Through the
query builder and model constructors that was a third of a message's CPU, so the hot path
writes its own SQL (``point_queries``, ``group_commit``). It must still store and read values
exactly as tortoise does, so the columns, defaults and conversions come from the model's
own description, and instances come back through the public ``Model.construct``.
Tests pin the round trip against the ORM on SQLite and PostgreSQL
(tests/test_group_commit.py, tests/test_prod_pipeline.py).
"""

from __future__ import annotations

import enum
from bot.core import jsoncodec
from collections.abc import Callable
import dataclasses
from dataclasses import dataclass
from datetime import date, datetime, timezone
from functools import cache
from typing import Any, Generic, TypeVar

from tortoise.exceptions import ValidationError
from tortoise.fields import BooleanField, DateField, DatetimeField, JSONField
from tortoise.models import Model

M = TypeVar("M", bound=Model)

UTC = timezone.utc


def for_dialect(sql: str, dialect: str) -> str:
    """SQL written with ``?`` placeholders, for the connection's dialect (PostgreSQL
    numbers them ``$1, $2 …``, MySQL wants ``%s``). ``?`` must only be placeholders."""
    if dialect == "mysql":
        return sql.replace("?", "%s")
    if dialect != "postgres":
        return sql
    parts = sql.split("?")
    return "".join(p + (f"${i}" if i < len(parts) else "") for i, p in enumerate(parts, start=1))


def _aware(value: datetime) -> datetime:
    # tortoise runs with use_tz and UTC (bot.core.storage): naive means UTC
    return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


def _datetime_from_db(value: Any) -> Any:
    if isinstance(value, str):
        value = datetime.fromisoformat(value)
    return _aware(value) if isinstance(value, datetime) else value


def _json_from_db(value: Any) -> Any:
    return jsoncodec.loads(value) if isinstance(value, (str, bytes)) else value


def _bool_from_db(value: Any) -> Any:
    return bool(value) if value is not None else None


def _date_from_db(value: Any) -> Any:
    return date.fromisoformat(value) if isinstance(value, str) else value


def _same(value: Any) -> Any:
    return value


@dataclass(frozen=True, slots=True)
class Column:
    name: str  # the model's attribute (``member_id`` for a foreign key)
    db: str  # the column
    from_db: Callable[[Any], Any]
    kind: str  # "datetime", "date", "json", "bool", "enum", "str", "other"
    nullable: bool
    default: Any  # a value, a callable, or None
    auto_now_add: bool
    auto_now: bool
    max_length: int | None
    enum_type: type[enum.Enum] | None

    def to_db(self, value: Any, dialect: str) -> Any:
        """What tortoise would bind for ``value`` on ``dialect``."""
        if value is None:
            if not self.nullable:
                raise ValidationError(f"{self.name}: None for a NOT NULL column")
            return None
        kind = self.kind
        if kind == "str":
            if self.max_length is not None and len(value) > self.max_length:
                raise ValidationError(f"{self.name}: longer than {self.max_length}")
            return value
        if kind == "datetime":
            value = _aware(value)
            # SQLite keeps text: tortoise's adapter writes isoformat(" ")
            return value.isoformat(" ") if dialect == "sqlite" else value
        if kind == "json":
            return value if isinstance(value, str) else jsoncodec.dumps(value)
        if kind == "enum":
            return value.value if isinstance(value, enum.Enum) else value
        if kind == "date" and dialect == "sqlite":
            return value.isoformat()
        return value


def _kind(field: dict[str, Any]) -> tuple[str, Callable[[Any], Any]]:
    ftype = field["field_type"]
    if isinstance(ftype, type):
        if issubclass(ftype, DatetimeField):
            return "datetime", _datetime_from_db
        if issubclass(ftype, DateField):
            return "date", _date_from_db
        if issubclass(ftype, JSONField):
            return "json", _json_from_db
        if issubclass(ftype, BooleanField):
            return "bool", _bool_from_db
    python = field.get("python_type")
    if isinstance(python, type) and issubclass(python, enum.Enum):
        enum_type = python
        return "enum", lambda v: enum_type(v) if v is not None else None
    if python is str:
        return "str", _same
    return "other", _same


@dataclass(frozen=True)
class Table(Generic[M]):
    model: type[M]
    name: str
    pk: str  # the primary key's column (also its attribute)
    columns: tuple[Column, ...]  # every column but the primary key, in the model's order
    by_name: dict[str, Column]
    # per select alias: (attribute, result key, converter) of every column, built once
    _keys: dict[str, tuple[tuple[str, str, Callable[[Any], Any]], ...]] = dataclasses.field(
        default_factory=dict, compare=False, repr=False
    )

    def select_list(self, alias: str, quote: str = '"') -> list[str]:
        """``alias."col" AS "alias__col"`` for the primary key and every column."""
        cols = [self.pk, *(c.db for c in self.columns)]
        return [f"{alias}.{quote}{c}{quote} AS {quote}{alias}__{c}{quote}" for c in cols]

    def from_row(self, row: Any, alias: str) -> M:
        """The instance tortoise would return for a row selected with :meth:`select_list`."""
        keys = self._keys.get(alias)
        if keys is None:
            keys = self._keys[alias] = tuple((c.name, f"{alias}__{c.db}", c.from_db) for c in self.columns)
        values = {self.pk: row[f"{alias}__{self.pk}"]}
        for name, key, from_db in keys:
            values[name] = row[key] if from_db is _same else from_db(row[key])
        return self.model.construct(_saved_in_db=True, **values)

    def values_for_insert(self, given: dict[str, Any], now: datetime) -> dict[str, Any]:
        """Every column's Python value for a new row: what is given, else the model's default
        (``auto_now``/``auto_now_add`` timestamps: ``now``)."""
        unknown = given.keys() - self.by_name.keys()
        if unknown:
            raise ValueError(f"{self.name}: no column {sorted(unknown)}")
        out: dict[str, Any] = {}
        for c in self.columns:
            if c.name in given and not c.auto_now:
                value = given[c.name]
                if value is None and c.auto_now_add:
                    value = now
            elif c.auto_now or c.auto_now_add:
                value = now
            elif callable(c.default):
                value = c.default()
            else:
                value = c.default
            out[c.name] = value
        return out


@cache
def table(model: type[M]) -> Table[M]:
    """The table of ``model`` (built once per model)."""
    d = model.describe(serializable=False)
    pk = d["pk_field"]["db_column"]
    columns: list[Column] = []
    for field in d["data_fields"]:
        kind, from_db = _kind(field)
        columns.append(
            Column(
                name=field["name"],
                db=field["db_column"],
                from_db=from_db,
                kind=kind,
                nullable=field["nullable"],
                default=field["default"],
                auto_now_add=bool(field.get("auto_now_add")),
                auto_now=bool(field.get("auto_now")),
                max_length=(field.get("constraints") or {}).get("max_length"),
                enum_type=field["python_type"] if kind == "enum" else None,
            )
        )
    for fk in (*d["fk_fields"], *d["o2o_fields"]):
        # tortoise keeps a foreign key in ``<name>_id``; its describe() does not name the column
        col = f"{fk['name']}_id"
        if any(c.db == col for c in columns):  # an initialised model lists it among its data fields
            continue
        columns.append(Column(col, col, _same, "other", fk["nullable"], None, False, False, None, None))
    return Table(model, d["table"], pk, tuple(columns), {c.name: c for c in columns})
