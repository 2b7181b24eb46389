"""The web chat's event stream keeps its promises under load and races (issue #18 leftovers):
rows arrive in id order even when a lower id commits after a higher one, a long absence is
caught up page by page past 200 rows, and a member (or an address) cannot open streams
without bound."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from aiohttp import ClientConnectionError
from aiohttp.test_utils import TestClient

from bot.core.app_keys import SERVICES
from bot.core.clock import utcnow
from bot.core.messages import Reply
from bot.core.models import OutboxMessage
from tests.test_webchat_history import member_id, say
from tests.test_webchat_identity import _client as start


@pytest_asyncio.fixture
async def web(tmp_path: Path) -> AsyncIterator[TestClient]:
    c = await start(tmp_path, webchat_events_max_rows=300, outbox_enabled=False)
    try:
        yield c
    finally:
        await c.close()


async def row(mid: int, text: str, *, status: str = "sent", id: int | None = None) -> OutboxMessage:  # noqa: A002
    """An outbox row of the member's web chat, as the sender leaves it (or still queued)."""
    extra = {"id": id} if id is not None else {}
    return await OutboxMessage.create(
        channel="web",
        address="x",
        member_id=mid,
        payload=Reply(text=text).to_dict(),
        purpose="agent",
        status=status,
        next_attempt_at=utcnow(),
        **extra,
    )


async def events_until_quiet(resp, quiet: float = 1.0) -> list[dict]:  # type: ignore[no-untyped-def]
    """Every event a stream sends until it is quiet for ``quiet`` seconds or ends; each
    frame's ``id`` is its row's."""
    got: list[dict] = []
    while True:
        try:
            frame = (await asyncio.wait_for(resp.content.readuntil(b"\n\n"), quiet)).decode()
        except (TimeoutError, ClientConnectionError):
            return got
        if not frame:  # the stream ended
            return got
        lines = dict(
            line.split(": ", 1) for line in frame.strip().split("\n") if ": " in line and not line.startswith(":")
        )
        if "data" in lines:
            event = json.loads(lines["data"])
            assert lines.get("id") == str(event["id"])
            got.append(event)


async def test_a_lower_id_committed_after_a_higher_one_is_delivered_once_in_order(web: TestClient) -> None:
    await say(web, text="你好", msg_id="o1", locale="zh_CN")
    mid = await member_id(web)
    fanout = web.app[SERVICES].fanout
    first = await row(mid, "第一条")
    resp = await web.get("/api/v1/chat/events", params={"after": str(first.id)})
    assert resp.status == 200
    # ids 11 and 12 above: 12 commits (and is published) first, 11 a moment later
    high = await row(mid, "第三条", id=first.id + 12)
    await fanout.publish(f"webchat:{mid}", {"id": high.id})
    await asyncio.sleep(0.1)
    low = await row(mid, "第二条", id=first.id + 11)
    await fanout.publish(f"webchat:{mid}", {"id": low.id})
    got = await events_until_quiet(resp)
    resp.close()
    assert [(e["id"], e["text"]) for e in got] == [(low.id, "第二条"), (high.id, "第三条")]


async def test_a_lower_row_still_queued_holds_back_the_next_until_it_is_sent(web: TestClient) -> None:
    await say(web, text="你好", msg_id="o2", locale="zh_CN")
    mid = await member_id(web)
    queued = await row(mid, "排队中", status="queued")
    resp = await web.get("/api/v1/chat/events", params={"after": "0"})
    later = await row(mid, "后发先至")  # sent while the lower one still waits for its turn
    await web.app[SERVICES].fanout.publish(f"webchat:{mid}", {"id": later.id})
    await asyncio.sleep(0.6)
    await OutboxMessage.filter(id=queued.id).update(status="sent")
    await web.app[SERVICES].fanout.publish(f"webchat:{mid}", {"id": queued.id})
    got = await events_until_quiet(resp)
    resp.close()
    assert [e["text"] for e in got] == ["排队中", "后发先至"]


async def test_a_450_row_gap_is_caught_up_page_by_page_across_a_bounded_reconnect(web: TestClient) -> None:
    await say(web, text="你好", msg_id="o3", locale="zh_CN")
    mid = await member_id(web)
    await OutboxMessage.bulk_create(
        [
            OutboxMessage(
                channel="web",
                address="x",
                member_id=mid,
                payload=Reply(text=f"离线消息 {i}").to_dict(),
                purpose="agent",
                status="sent",
            )
            for i in range(450)
        ]
    )
    old = utcnow().replace(year=2020)
    await OutboxMessage.filter(member_id=mid).update(created_at=old)  # long ago: no grace to wait out
    ids = sorted(await OutboxMessage.filter(member_id=mid).values_list("id", flat=True))
    resp = await web.get("/api/v1/chat/events", params={"after": "0"})
    first = await events_until_quiet(resp)
    resp.close()
    assert [e["id"] for e in first] == ids[:300]  # one request reads at most max_rows, then ends
    resp = await web.get("/api/v1/chat/events", headers={"Last-Event-ID": str(first[-1]["id"])})
    rest = await events_until_quiet(resp)
    resp.close()
    assert [e["id"] for e in rest] == ids[300:]
    assert [e["text"] for e in first + rest] == [f"离线消息 {i}" for i in range(450)]


async def test_the_sixth_stream_of_a_member_is_refused_until_one_closes(web: TestClient) -> None:
    await say(web, text="你好", msg_id="o4", locale="zh_CN")
    streams = [await web.get("/api/v1/chat/events") for _ in range(5)]
    assert [s.status for s in streams] == [200] * 5
    refused = await web.get("/api/v1/chat/events")
    assert refused.status == 429 and "error" in await refused.json()
    streams.pop().close()
    for _ in range(50):  # the server notices the closed connection
        again = await web.get("/api/v1/chat/events")
        if again.status == 200:
            break
        await asyncio.sleep(0.05)
    assert again.status == 200
    again.close()
    for s in streams:
        s.close()


async def test_streams_per_client_address_are_capped_across_members(tmp_path: Path) -> None:
    c = await start(tmp_path, webchat_events_per_ip=3, outbox_enabled=False)
    try:
        streams = []
        for i in range(3):
            c.session.cookie_jar.clear()
            await say(c, text="你好", msg_id=f"ip{i}", locale="zh_CN")
            streams.append(await c.get("/api/v1/chat/events"))
        assert [s.status for s in streams] == [200] * 3
        c.session.cookie_jar.clear()
        await say(c, text="你好", msg_id="ip9", locale="zh_CN")
        refused = await c.get("/api/v1/chat/events")  # a new member, from the same address
        assert refused.status == 429 and "error" in await refused.json()
        for s in streams:
            s.close()
    finally:
        await c.close()
