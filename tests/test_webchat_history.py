"""The web chat's memory and live updates (issue 18): the conversation comes back from the
server's transcript on reload, and messages sent later arrive by server-sent events."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from aiohttp import CookieJar
from aiohttp.test_utils import TestClient, TestServer
from hypothesis import given, settings
from hypothesis import strategies as st

from bot.app import create_app
from bot.core.app_keys import SERVICES
from bot.core.messages import Choice, Reply
from bot.core.models import ChannelAccount
from tests.community_helpers import wait_sent
from tests.conftest import load_sample_kb, make_settings

QUESTION = "我的流量还剩多少，怎么查？"


async def _client(tmp_path: Path) -> TestClient:
    app = create_app(make_settings(tmp_path), db_setup="schema")
    c = TestClient(TestServer(app), cookie_jar=CookieJar(unsafe=True))
    await c.start_server()
    await load_sample_kb(app)
    return c


@pytest_asyncio.fixture
async def web(tmp_path: Path) -> AsyncIterator[TestClient]:
    c = await _client(tmp_path)
    try:
        yield c
    finally:
        await c.close()


async def say(c: TestClient, **body: object) -> list[dict]:
    r = await c.post("/api/v1/chat", json=body)
    assert r.status == 200, await r.text()
    return (await r.json())["replies"]


async def history(c: TestClient, **params: object) -> dict:
    r = await c.get("/api/v1/chat/history", params={k: str(v) for k, v in params.items()})
    assert r.status == 200, await r.text()
    return await r.json()


async def member_id(c: TestClient) -> int:
    (account,) = await ChannelAccount.filter(channel="web")
    return account.member_id


async def next_event(resp) -> dict:  # type: ignore[no-untyped-def]
    """The next ``data:`` event of a stream (comments skipped), with its ``id``."""
    while True:
        frame = (await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 5)).decode()
        lines = dict(
            line.split(": ", 1) for line in frame.strip().split("\n") if not line.startswith(":") and ": " in line
        )
        if "data" in lines:
            event = json.loads(lines["data"])
            assert lines.get("id") == str(event["id"])
            return event


async def test_reload_returns_both_directions_in_order_with_only_the_newest_menu_live(web: TestClient) -> None:
    first = await say(web, text=QUESTION, msg_id="a1", locale="zh_CN")
    assert first[-1]["choices"]
    await say(web, text="怎么充值话费", msg_id="a2", locale="zh_CN")
    h = await history(web)
    texts = [(e["direction"], e["text"]) for e in h["entries"]]
    assert texts[0] == ("in", QUESTION) and ("in", "怎么充值话费") in texts
    assert [d for d, _ in texts].count("in") == 2 and texts.index(("in", "怎么充值话费")) > 1
    ids = [e["id"] for e in h["entries"]]
    assert ids == sorted(ids) and h["more"] is False
    menus = [e for e in h["entries"] if e["choices"]]
    assert len(menus) >= 2
    assert all(not c["active"] for m in menus[:-1] for c in m["choices"])  # older menus: labels only
    assert all(c["active"] for c in menus[-1]["choices"])  # the pending one can still be tapped
    # tapping it is remembered as the label the member saw, and the menu is no longer live
    pick = menus[-1]["choices"][0]
    await say(web, action=pick["action"], msg_id="a3", locale="zh_CN")
    h = await history(web)
    assert ("in", pick["label"]) in [(e["direction"], e["text"]) for e in h["entries"]]
    assert not any(c["active"] for e in h["entries"] if e["id"] <= menus[-1]["id"] for c in e["choices"])


async def test_history_is_the_sessions_own_and_pages_back(web: TestClient) -> None:
    for i in range(4):
        await say(web, text=f"第{i}个问题 宽带", msg_id=f"p{i}", locale="zh_CN")
    full = await history(web)
    page = await history(web, limit=3)
    assert page["more"] is True and [e["id"] for e in page["entries"]] == [e["id"] for e in full["entries"][-3:]]
    back = await history(web, before=page["entries"][0]["id"], limit=100)
    assert [e["id"] for e in back["entries"]] + [e["id"] for e in page["entries"]] == [e["id"] for e in full["entries"]]

    cookie_jar = web.session.cookie_jar
    saved = list(cookie_jar)
    cookie_jar.clear()
    r = await web.get("/api/v1/chat/history")
    assert r.status == 401  # no session: nobody's history
    r = await web.get("/api/v1/chat/history", params={"user": "x", "user_hash": "0" * 64})
    assert r.status == 401
    await say(web, text="你好", msg_id="other")  # another visitor sees only its own
    other = await history(web)
    assert [e["text"] for e in other["entries"] if e["direction"] == "in"] == ["你好"]
    for bad in ({"before": "-1"}, {"limit": "x"}, {"before": "1e9"}):
        r = await web.get("/api/v1/chat/history", params=bad)
        assert r.status == 400 and "error" in await r.json()
    assert saved


async def test_agent_messages_come_back_with_an_unanswered_survey_still_live(web: TestClient) -> None:
    await say(web, text=QUESTION, msg_id="b1", locale="zh_CN")
    mid = await member_id(web)
    outbox = web.app[SERVICES].outbox
    await outbox.to_member(mid, Reply(text="您好，我是客服小王"), purpose="agent", idempotency_key="h1")
    await outbox.to_member(
        mid,
        Reply(text="请评价本次服务", choices=[Choice("满意", "survey:1:5"), Choice("不满意", "survey:1:1")]),
        purpose="survey",
        idempotency_key="h2",
    )
    row = await wait_sent(channel="web", member_id=mid, purpose="survey")
    h = await history(web)
    agent = [e for e in h["entries"] if e["kind"] == "agent"]
    assert [e["text"] for e in agent] == ["您好，我是客服小王"]
    survey = h["entries"][-1]
    assert [(c["label"], c["active"]) for c in survey["choices"]] == [("满意", True), ("不满意", True)]
    assert h["last_update"] >= row.id  # the page does not show them twice from the stream
    assert not any(c["active"] for e in h["entries"][:-1] for c in e["choices"])


async def test_events_stream_the_backlog_then_live_messages_once(web: TestClient) -> None:
    await say(web, text="你好", msg_id="c1", locale="zh_CN")
    mid = await member_id(web)
    outbox = web.app[SERVICES].outbox
    await outbox.to_member(mid, Reply(text="早先的回复"), purpose="agent", idempotency_key="e1")
    early = await wait_sent(channel="web", member_id=mid, purpose="agent")
    resp = await web.get("/api/v1/chat/events", params={"after": "0"})
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    got = await next_event(resp)
    assert got["id"] == early.id and got["text"] == "早先的回复"
    await outbox.to_member(mid, Reply(text="新的回复"), purpose="agent", idempotency_key="e2")
    got = await next_event(resp)
    assert got["text"] == "新的回复" and got["id"] > early.id
    resp.close()
    # a reconnect names the last id it saw: nothing is repeated
    resp = await web.get("/api/v1/chat/events", headers={"Last-Event-ID": str(got["id"])})
    await outbox.to_member(mid, Reply(text="第三条"), purpose="agent", idempotency_key="e3")
    assert (await next_event(resp))["text"] == "第三条"
    resp.close()


async def test_events_refuse_strangers_and_other_members(web: TestClient) -> None:
    r = await web.get("/api/v1/chat/events")
    assert r.status == 401
    await say(web, text="你好", msg_id="d1", locale="zh_CN")
    first = await member_id(web)
    web.session.cookie_jar.clear()
    await say(web, text="你好", msg_id="d2", locale="zh_CN")
    resp = await web.get("/api/v1/chat/events")
    await web.app[SERVICES].outbox.to_member(first, Reply(text="只给第一位"), purpose="agent", idempotency_key="x1")
    await wait_sent(channel="web", member_id=first, purpose="agent")
    try:
        got = await asyncio.wait_for(next_event(resp), 1.5)
    except TimeoutError:
        got = None
    assert got is None  # the other member's stream heard nothing
    resp.close()


async def test_zh_tw_member_receives_traditional_agent_messages(web: TestClient) -> None:
    await say(web, text="你好", msg_id="t1", locale="zh_TW")
    mid = await member_id(web)
    resp = await web.get("/api/v1/chat/events")
    await web.app[SERVICES].outbox.to_member(
        mid,
        Reply(text="请重启光猫后再试", choices=[Choice("满意", "survey:2:5")]),
        purpose="agent",
        idempotency_key="tw1",
    )
    got = await next_event(resp)
    resp.close()
    assert got["text"] == "請重啟光貓後再試" and got["choices"][0]["label"] == "滿意"
    h = await history(web)
    assert h["entries"][-1]["text"] == "請重啟光貓後再試"
    r = await web.get("/api/v1/chat/updates", params={"after": "0"})
    assert (await r.json())["messages"][0]["text"] == "請重啟光貓後再試"


async def test_streams_end_when_the_app_shuts_down(tmp_path: Path) -> None:
    """An open stream does not hold the shutdown up: it ends at once, not at the next write."""
    import aiohttp
    from aiohttp import web as aioweb

    from tests.browser import free_port

    app = create_app(make_settings(tmp_path), db_setup="schema")
    runner = aioweb.AppRunner(app)
    await runner.setup()
    port = free_port()
    await aioweb.TCPSite(runner, "127.0.0.1", port).start()
    base = f"http://127.0.0.1:{port}"
    async with aiohttp.ClientSession(cookie_jar=CookieJar(unsafe=True)) as s:
        r = await s.post(f"{base}/api/v1/chat", json={"text": "你好", "msg_id": "s1", "locale": "zh_CN"})
        assert r.status == 200
        resp = await s.get(f"{base}/api/v1/chat/events")
        assert resp.status == 200
        await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 5)
        started = asyncio.get_running_loop().time()
        cleanup = asyncio.create_task(runner.cleanup())
        rest = await asyncio.wait_for(resp.content.read(), 5)  # the server ended the stream
        await asyncio.wait_for(cleanup, 10)
        assert b"data:" not in rest
        assert asyncio.get_running_loop().time() - started < 5  # not the 15 s keep-alive, not a timeout


async def test_every_page_size_walks_back_over_each_entry_exactly_once(web: TestClient) -> None:
    from bot.core.models import TranscriptEntry

    await say(web, text="你好", msg_id="w0", locale="zh_CN")
    mid = await member_id(web)
    for i in range(23):
        await TranscriptEntry.create(member_id=mid, channel="web", direction="in" if i % 2 else "out", text=f"m{i}")
    await TranscriptEntry.create(member_id=mid, channel="telegram", direction="in", text="other channel")
    full = [e["id"] for e in (await history(web, limit=100))["entries"]]
    assert len(full) == len(set(full)) and "other channel" not in str(full)
    for limit in range(1, 30):
        seen: list[int] = []
        page = await history(web, limit=limit)
        while True:
            seen = [e["id"] for e in page["entries"]] + seen
            if not page["more"]:
                break
            page = await history(web, limit=limit, before=page["entries"][0]["id"])
        assert seen == full, limit


@settings(max_examples=200, deadline=None)
@given(st.one_of(st.none(), st.text(max_size=30)), st.one_of(st.none(), st.text(max_size=30)))
def test_last_event_id_is_a_non_negative_int_whatever_the_client_sends(header: str | None, query: str | None) -> None:
    from urllib.parse import quote

    from aiohttp.test_utils import make_mocked_request
    from multidict import CIMultiDict

    from bot.web.sse import last_event_id

    headers = CIMultiDict()
    if header is not None and header.isprintable() and header.isascii() and "\n" not in header:
        headers["Last-Event-ID"] = header
    path = "/api/v1/chat/events" + (f"?after={quote(query)}" if query is not None else "")
    got = last_event_id(make_mocked_request("GET", path, headers=headers))
    assert isinstance(got, int) and got >= 0
    if headers.get("Last-Event-ID", "").isdigit() and headers["Last-Event-ID"].isascii():
        assert got == int(headers["Last-Event-ID"])
