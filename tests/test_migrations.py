"""The migrations build the schema the models describe, on a fresh database."""
from __future__ import annotations

from pathlib import Path

from tortoise import Tortoise
from tortoise.migrations.autodetector import MigrationAutodetector

from bot import storage
from bot.models import Member


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
