"""Database wiring: one tortoise-orm app ("models") over every domain's model module.

Schema changes go through the migrations in ``bot/migrations`` (tortoise-orm's built-in
migration framework): ``python -m bot migrate`` applies them.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from tortoise import Tortoise
from tortoise.migrations.api import migrate as tortoise_migrate

if TYPE_CHECKING:
    from bot.core.settings import Settings

log = logging.getLogger(__name__)
T = TypeVar("T")

# Every module holding models. Add a domain's module here, then `make migrations`.
MODEL_MODULES: list[str] = [
    "bot.core.models",
    "bot.core.identity.models",
    "community.models",
    "community.consent",
    "sms_gateway.models",
    "bot.staff.models",
    "community.offers.models",
    "community.qa.models",
    "community.moderation.models",
    "community.inbox.models",
    "community.members.models",
    "community.knowledge_admin.models",
    "community.review.models",
    "gamification.models",
]


def tortoise_config(database_url: str) -> dict[str, Any]:
    if database_url.startswith("sqlite://") and not database_url.startswith("sqlite://:memory:"):
        Path(database_url.removeprefix("sqlite://")).parent.mkdir(parents=True, exist_ok=True)
    if database_url.startswith("sqlite://") and "synchronous=" not in database_url:
        # WAL (tortoise's default) with synchronous=NORMAL: no fsync per commit, still
        # crash-safe (a power cut can lose only the last transactions, never corrupt)
        database_url += ("&" if "?" in database_url else "?") + "synchronous=NORMAL"
    if database_url.startswith("postgresql://"):
        database_url = "postgres://" + database_url.removeprefix("postgresql://")
    return {
        "connections": {"default": database_url},
        "apps": {
            "models": {
                "models": MODEL_MODULES,
                "default_connection": "default",
                "migrations": "bot.migrations",
            }
        },
        "use_tz": True,
        "timezone": "UTC",
    }


async def migrate(database_url: str) -> None:
    """Apply all pending migrations (idempotent)."""
    try:
        await tortoise_migrate(config=tortoise_config(database_url))
    finally:
        await Tortoise.close_connections()


async def open_db(database_url: str, *, create_schema: bool = False) -> None:
    """Open the connection pool for this process (global so request tasks see it)."""
    # tortoise caches each model's INSERT/DELETE SQL per connection *name*: after a
    # SQLite database, a PostgreSQL one under the same name would get "?" placeholders
    from tortoise.backends.base.executor import EXECUTOR_CACHE

    EXECUTOR_CACHE.clear()
    await Tortoise.init(config=tortoise_config(database_url), _enable_global_fallback=True)
    if create_schema:
        await Tortoise.generate_schemas(safe=True)


async def close_db() -> None:
    """Close the pool; also clears tortoise's global fallback so tests can reopen."""
    await Tortoise.close_connections()


async def with_db(settings: "Settings", coro_fn: "Callable[[], Awaitable[T]]") -> T:
    """Run one command's coroutine with the database open (commands run outside the app)."""
    if settings.is_sqlite:  # embedded mode keeps its own schema current
        await migrate(settings.database_url)
    await open_db(settings.database_url)
    try:
        return await coro_fn()
    finally:
        await close_db()
