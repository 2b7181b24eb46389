"""Shared fixtures: an app on a fresh SQLite database, and a client for it."""

from __future__ import annotations

import os
import tempfile
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import settings as hypothesis_settings

# how long one example takes on a loaded CI machine says nothing about correctness
hypothesis_settings.register_profile("everycsr", deadline=None)
hypothesis_settings.load_profile("everycsr")

# jieba caches its dictionary: keep it out of /tmp and shared across tests
os.environ.setdefault("BOT_JIEBA_CACHE_DIR", tempfile.gettempdir())
# the service's defaults turn the sentence encoder on where it is installed and calibrate the
# thresholds at load: processes the tests start (workers, the CLI) keep to the lexical matcher
# and the fitted thresholds unless a test asks otherwise, so that the suite stays fast
os.environ.setdefault("BOT_SEARCH_SEMANTIC", "none")
os.environ.setdefault("BOT_SEARCH_SELF_CALIBRATE", "false")

from bot.app import create_app  # noqa: E402
from bot.core.app_keys import SERVICES  # noqa: E402
from bot.core.settings import ROOT, Settings  # noqa: E402

SAMPLE_KB = ROOT / "community" / "data" / "sample_kb.yaml"
pytest_plugins = ["tests.fixtures_services"]


def make_settings(tmp_path: Path, **overrides: object) -> Settings:
    values: dict[str, object] = {
        "database_url": f"sqlite://{tmp_path / 'test.sqlite3'}",
        "redis_url": "",
        "webchat_identity_secret": "test-webchat-identity-secret",  # tests.community_helpers.as_member
        "webchat_rate_per_session": 0,  # test_webchat_identity turns the inbound limits on
        "webchat_rate_per_ip": 0,
        "outbox_poll_seconds": 0.05,
        "outbox_backoff_base_seconds": 0.05,
        # explicit, so that a test that does not need the encoder never loads it, and the
        # thresholds stay the fitted defaults unless a test asks for self-calibration
        "search_semantic": "none",
        "search_self_calibrate": False,
        # the app's KPI child process (bot/dashboard/prom.py): tests that need it turn it on
        "dashboard_kpi_child": False,
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)  # type: ignore[call-arg]


async def load_sample_kb(app) -> None:  # type: ignore[no-untyped-def]
    from bot.cli import import_kb

    await import_kb(SAMPLE_KB, quiet=True)
    await app[SERVICES].kb.load()


@pytest_asyncio.fixture
async def sqlite_orm(tmp_path: Path) -> AsyncIterator[None]:
    """The ORM on a fresh SQLite database with the schema, no app around it."""
    from bot.core import storage

    await storage.open_db(f"sqlite://{tmp_path / 'orm.sqlite3'}", create_schema=True)
    try:
        yield
    finally:
        await storage.close_db()


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path)


@pytest_asyncio.fixture
async def client(settings: Settings) -> AsyncIterator[TestClient]:
    """A running app with the sample knowledge base loaded."""
    app = create_app(settings, db_setup="schema")
    async with TestClient(TestServer(app)) as c:
        await load_sample_kb(app)
        yield c


@pytest_asyncio.fixture
async def services(client: TestClient):  # type: ignore[no-untyped-def]
    return client.app[SERVICES]


@pytest_asyncio.fixture
async def gam(client: TestClient):  # type: ignore[no-untyped-def]
    """The running app's gamification: the instance its handlers, pages and subscribers use."""
    from gamification.service import GAMIFICATION

    return client.app[GAMIFICATION]


# fixtures that build and start the whole app, drive a browser or start real servers
APP_FIXTURES = frozenset(
    {
        "client",
        "services",
        "app",
        "browser",
        "page",
        "live_server",
        "redis_server",
        "redis_url",
        "fresh_redis_url",
        "postgres_cluster",
        "postgres_url",
        "fresh_postgres_url",
    }
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Mark the fast tier: tests that need neither the app nor a browser nor real servers
    (``make unit`` runs only these: domain logic on the ``sqlite_orm`` fixture, parsers,
    properties)."""
    for item in items:
        names = set(getattr(item, "fixturenames", ()))
        if (
            not names & APP_FIXTURES
            and not item.get_closest_marker("browser")
            and not item.get_closest_marker("services")
        ):
            item.add_marker(pytest.mark.unit)
