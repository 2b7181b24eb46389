"""The migrations build the schema the models describe, on a fresh database."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from tortoise import Tortoise
from tortoise.migrations.autodetector import MigrationAutodetector

from bot.core import storage
from bot.core.models import Member


async def test_migrations_apply_and_match_models(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'm.sqlite3'}"
    await storage.migrate(url)
    await storage.migrate(url)  # idempotent
    await storage.open_db(url)
    try:
        await Member.create(display_name="x")
        assert await Member.all().count() == 1
        config = storage.tortoise_config(url)
        detector = MigrationAutodetector(Tortoise.apps, config["apps"])
        pending = await detector.changes()
        assert not pending, "models changed without a migration: run `make migrations`"
    finally:
        await storage.close_db()


async def test_migrations_apply_on_postgresql(fresh_postgres_url: str) -> None:
    await storage.migrate(fresh_postgres_url)
    await storage.migrate(fresh_postgres_url)
    await storage.open_db(fresh_postgres_url)
    try:
        member = await Member.create(display_name="pg")
        assert await Member.filter(id=member.id).exists()
        detector = MigrationAutodetector(Tortoise.apps, storage.tortoise_config(fresh_postgres_url)["apps"])
        assert not await detector.changes()
    finally:
        await storage.close_db()


def _sqlite_indexes(path: Path) -> dict[str, dict[tuple[str, ...], bool]]:
    """table -> {indexed columns: unique} as SQLite itself reports them."""
    con = sqlite3.connect(path)
    try:
        out: dict[str, dict[tuple[str, ...], bool]] = {}
        tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type='table'")]
        for table in tables:
            for _seq, name, unique, *_ in con.execute(f'PRAGMA index_list("{table}")'):
                cols = tuple(r[2] for r in con.execute(f'PRAGMA index_info("{name}")'))
                out.setdefault(table, {})[cols] = bool(unique)
        return out
    finally:
        con.close()


async def test_every_declared_index_and_unique_constraint_exists_after_all_migrations(tmp_path: Path) -> None:
    """Later migrations must not lose what earlier ones built (SQLite rebuilds a table to
    alter a column, and a rebuild can drop its indexes)."""
    db = tmp_path / "m.sqlite3"
    url = f"sqlite://{db}"
    await storage.migrate(url)
    await storage.open_db(url)
    try:
        models = [m for app in Tortoise.apps.values() for m in app.values()]
    finally:
        await storage.close_db()
    have = _sqlite_indexes(db)
    missing = []
    for model in models:
        meta = model._meta

        def cols(names: tuple[str, ...] | list[str]) -> tuple[str, ...]:
            # a foreign key is named by its relation ("member") or its column ("member_id")
            return tuple(
                getattr(meta.fields_map[n], "source_field", None) or meta.fields_db_projection[n] for n in names
            )

        table = have.get(meta.db_table, {})
        wanted: list[tuple[tuple[str, ...], bool]] = [(cols(group), True) for group in meta.unique_together]
        for index in meta.indexes:
            wanted.append((cols(index.fields if hasattr(index, "fields") else index), False))
        for name, field in meta.fields_map.items():
            if field.index and not field.pk and name in meta.fields_db_projection:
                wanted.append(((meta.fields_db_projection[name],), bool(field.unique)))
        for columns, unique in wanted:
            if columns not in table or (unique and not table[columns]):
                missing.append(f"{meta.db_table}{columns}{' unique' if unique else ''}")
    assert not missing, missing
    # the workers' catch-up query is served by the index
    con = sqlite3.connect(db)
    plan = " ".join(
        str(r)
        for r in con.execute(
            "EXPLAIN QUERY PLAN SELECT id, updated_at FROM knowledge_item WHERE updated_at >= ?", ("2026-01-01",)
        )
    )
    con.close()
    assert "USING INDEX" in plan or "USING COVERING INDEX" in plan, plan
