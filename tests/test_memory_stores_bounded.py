"""Without Redis, the process's dedup and state stores hold a bounded number of entries,
and a retry whose entry was dropped for room still acts once."""

from __future__ import annotations

from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.core.app_keys import SERVICES
from bot.core.models import TranscriptEntry
from bot.core.stores import MemoryDedupStore, MemoryStateStore, TTLMap
from tests.community_helpers import chat
from tests.conftest import load_sample_kb, make_settings


def test_ttl_map_drops_the_least_recently_written_past_its_bound() -> None:
    now = [0.0]
    m = TTLMap(lambda: now[0], max_entries=3)
    for k in "abcd":
        m.set(k, k.upper(), ttl=3600)
    assert len(m) == 3 and m.get("a") is None and m.get("d") == "D" and m.evicted == 1
    m.set("b", "B2", ttl=3600)  # written again: now the newest
    m.set("e", "E", ttl=3600)
    assert m.get("b") == "B2" and m.get("c") is None and len(m) == 3


async def test_state_store_keeps_the_most_recently_active_members() -> None:
    store = MemoryStateStore(max_entries=2)
    for member in (1, 2, 3):
        await store.set(f"member:{member}", {"n": member}, ttl=3600)
    assert await store.get("member:1") == {} and await store.get("member:3") == {"n": 3}


async def test_dedup_store_bound_never_makes_a_retry_act_twice(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, memory_dedup_max_entries=1), db_setup="schema")
    async with TestClient(TestServer(app)) as client:
        await load_sample_kb(app)
        first = await chat(client, "bounded", text="我的流量还剩多少", msg_id="b-1")
        await chat(client, "bounded", text="怎么交话费", msg_id="b-2")  # pushes b-1 out of the store
        assert len(app[SERVICES].dedup._claims) == 1  # b-1's entry is gone
        again = await chat(client, "bounded", text="我的流量还剩多少", msg_id="b-1")
        assert [r["text"] for r in again] == [r["text"] for r in first]
        assert (
            await TranscriptEntry.filter(msg_id__endswith="b-1", direction="in").count() == 1
        )  # the id is scoped to the session
        assert await TranscriptEntry.filter(direction="out", text=first[0]["text"]).count() == 1


def test_the_dedup_store_takes_its_bound() -> None:
    assert MemoryDedupStore(max_entries=5)._claims.max_entries == 5
