"""The offers each worker keeps in memory: read once, forgotten on a save (on every worker),
and never older than the cache setting after a change made elsewhere."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app

from bot.core.fanout import MemoryFanout
from community.offers.catalog import OFFER_CATALOG, OfferCatalog
from community.offers.models import Offer
from tests.community_helpers import chat
from tests.conftest import load_sample_kb, make_settings

NOW = datetime(2026, 12, 5, 12, 0, tzinfo=timezone.utc)


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def offer(title: str, **kw: object) -> Offer:
    return await Offer.create(title=title, body="b", url="https://shop.example/x", **kw)


async def test_read_once_then_from_memory_until_the_ttl(sqlite_orm: None) -> None:
    clock = Clock()
    catalog = OfferCatalog(ttl=5, clock=clock)
    await offer("a")
    await offer("off", active=False)
    await offer("ended", ends_at=NOW - timedelta(minutes=1))
    assert [o.title for o in await catalog.active(NOW)] == ["a"]
    await offer("b")  # written behind the catalog's back (a script)
    clock.now += 4.9
    assert [o.title for o in await catalog.active(NOW)] == ["a"] and catalog.loads == 1
    clock.now += 0.2  # past the ttl: read again
    assert [o.title for o in await catalog.active(NOW)] == ["a", "b"] and catalog.loads == 2
    # an offer ends while cached: it stops being offered without a reload
    assert [o.title for o in await catalog.active(NOW + timedelta(days=1))] == ["a", "b"]
    await Offer.filter(title="a").update(ends_at=NOW + timedelta(hours=1))
    catalog.forget()
    assert [o.title for o in await catalog.active(NOW + timedelta(hours=2))] == ["b"]


async def test_many_answers_at_once_read_the_offers_once(sqlite_orm: None) -> None:
    catalog = OfferCatalog(ttl=5)
    await offer("a")
    results = await asyncio.gather(*(catalog.active(NOW) for _ in range(50)))
    assert catalog.loads == 1 and all([o.title for o in r] == ["a"] for r in results)


async def test_a_change_during_a_read_is_not_hidden_by_it(sqlite_orm: None) -> None:
    """A read that began before a save must not be kept as the fresh list."""
    catalog = OfferCatalog(ttl=60)
    await offer("a")
    reading = asyncio.create_task(catalog.active(NOW))
    await asyncio.sleep(0)  # the read has started
    await offer("b")
    catalog.forget()  # the save's notice arrives while the read is in flight
    await reading
    assert [o.title for o in await catalog.active(NOW)] == ["a", "b"]


async def test_ttl_zero_reads_every_time(sqlite_orm: None) -> None:
    catalog = OfferCatalog(ttl=0)
    await offer("a")
    await catalog.active(NOW)
    await catalog.active(NOW)
    assert catalog.loads == 2


async def test_a_save_on_one_worker_reaches_the_others(sqlite_orm: None) -> None:
    fanout = MemoryFanout()  # Redis across processes: same interface, contract-tested in test_fanout
    saver, other = OfferCatalog(ttl=3600), OfferCatalog(ttl=3600)
    following = [asyncio.create_task(c.follow(fanout)) for c in (saver, other)]
    await asyncio.sleep(0.01)
    try:
        assert await other.active(NOW) == []
        await offer("new")
        await saver.changed()
        for _ in range(100):
            if [o.title for o in await other.active(NOW)] == ["new"]:
                break
            await asyncio.sleep(0.01)
        assert [o.title for o in await other.active(NOW)] == ["new"]
    finally:
        for task in following:
            task.cancel()
        await asyncio.gather(*following, return_exceptions=True)


@pytest_asyncio.fixture
async def offers_client(tmp_path: Path) -> AsyncIterator[TestClient]:
    """The app with offers at any time of day and an hour-long cache: only a save can refresh it."""
    app = create_app(make_settings(tmp_path, offers_quiet_hours="", offers_cache_seconds=3600), db_setup="schema")
    async with TestClient(TestServer(app)) as c:
        await load_sample_kb(app)
        yield c


async def test_an_offer_saved_on_the_page_is_offered_at_the_next_answer(offers_client: TestClient) -> None:
    """The marketer's save is visible to the very next answer, whatever the cache setting."""
    from tests.test_offers_flow import QUESTION, login

    client = offers_client
    catalog = client.app[OFFER_CATALOG]
    first = await chat(client, "cat-1", text=QUESTION, msg_id="cat-1")  # loads the (empty) catalog
    assert not any(r["cards"] for r in first) and catalog.loads == 1
    token = await login(client)
    form = {
        "csrf_token": token,
        "title": "流量叠加包",
        "body": "加购更划算",
        "url": "https://shop.example/addon",
        "action_label": "",
        "trigger_items": "",
        "trigger_categories": "",
        "trigger_keywords": "流量",
        "trigger_tags": "",
        "channels": "web",
        "locales": "zh_CN",
        "starts_at": "",
        "ends_at": "",
        "daily_budget": "",
        "repeat_days": "0",
        "priority": "1",
        "active": "on",
    }
    loads = catalog.loads
    resp = await client.post("/admin/offers/new", data=form, allow_redirects=False)
    assert resp.status == 302, await resp.text()
    second = await chat(client, "cat-2", text=QUESTION, msg_id="cat-2")
    assert catalog.loads == loads + 1
    assert [c["title"] for r in second for c in r["cards"]] == ["流量叠加包"], second
    await chat(client, "cat-3", text=QUESTION, msg_id="cat-3")
    assert catalog.loads == loads + 1  # from memory again
