"""The message pipeline in production mode: PostgreSQL + Redis, under concurrency.

The same assertions run on the embedded backends (SQLite + in-process stores) and on
PostgreSQL + Redis: a member's first messages arriving at once create one member, a
retry storm of one message is processed once and every retry gets the same answer.
"""
from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.app_keys import SERVICES
from bot.models import ChannelAccount, Member, TranscriptEntry
from bot.redis_stores import RedisDedupStore
from tests.conftest import make_settings


@pytest.fixture(params=["embedded", "production"])
async def client(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TestClient]:
    if request.param == "production":
        settings = make_settings(
            tmp_path,
            database_url=request.getfixturevalue("fresh_postgres_url"),
            redis_url=request.getfixturevalue("fresh_redis_url"),
        )
    else:
        settings = make_settings(tmp_path)
    app = create_app(settings, db_setup="schema")
    async with TestClient(TestServer(app)) as c:
        if request.param == "production":
            assert isinstance(app[SERVICES].dedup, RedisDedupStore)
            from tortoise import connections

            assert connections.get("default").capabilities.dialect == "postgres"
        yield c


async def test_first_contact_burst_creates_one_member(client: TestClient) -> None:
    async def send(i: int) -> int:
        r = await client.post("/api/v1/chat", json={"user": "newbie", "text": f"你好 {i}", "msg_id": f"n{i}"})
        return r.status

    statuses = await asyncio.gather(*[send(i) for i in range(20)])
    assert statuses == [200] * 20
    assert await ChannelAccount.filter(channel="web", external_id="newbie").count() == 1
    assert await Member.all().count() == 1
    assert await TranscriptEntry.filter(direction="in").count() == 20


async def test_retry_storm_is_processed_once(client: TestClient) -> None:
    body = {"user": "storm", "text": "流量怎么查", "msg_id": "same-id"}
    responses = await asyncio.gather(*[client.post("/api/v1/chat", json=body) for _ in range(30)])
    payloads = [await r.json() for r in responses]
    assert [r.status for r in responses] == [200] * 30
    assert await TranscriptEntry.filter(msg_id="same-id", direction="in").count() == 1
    first = payloads[0]["replies"]
    assert first, "the first answer is not empty"
    assert all(p["replies"] == first for p in payloads)  # every retry got the same answer


async def test_retry_after_dedup_store_loss_still_acts_once(client: TestClient) -> None:
    """Dedup keys lost (Redis flushed / expired): the unique transcript row still holds."""
    body = {"user": "late", "text": "你好", "msg_id": "late-1"}
    assert (await client.post("/api/v1/chat", json=body)).status == 200
    services = client.app[SERVICES]
    await services.dedup.release("web:late-1")
    r = await client.post("/api/v1/chat", json=body)
    assert r.status == 200
    assert await TranscriptEntry.filter(msg_id="late-1", direction="in").count() == 1
