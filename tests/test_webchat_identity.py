"""Web chat identity through HTTP: the server's session, the operator's verified user, and
nothing a client merely claims (issue 16: the PUK leak; issue 23: content type and CORS)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp import CookieJar
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.core.app_keys import SERVICES
from bot.core.messages import Reply
from bot.core.models import ChannelAccount, OutboxMessage, TranscriptEntry
from bot.web.chat_session import COOKIE, session_cookie_value
from tests.community_helpers import as_member, chat, wait_sent
from tests.conftest import load_sample_kb, make_settings

PUK = "Your PUK is 12345678"


async def _client(tmp_path: Path, **overrides: object) -> TestClient:
    app = create_app(make_settings(tmp_path, **overrides), db_setup="schema")
    c = TestClient(TestServer(app), cookie_jar=CookieJar(unsafe=True))
    await c.start_server()
    await load_sample_kb(app)
    return c


@pytest_asyncio.fixture
async def web(tmp_path: Path) -> AsyncIterator[TestClient]:
    c = await _client(tmp_path, webchat_allowed_origins="https://shop.example, https://m.shop.example")
    try:
        yield c
    finally:
        await c.close()


def session_cookie(c: TestClient) -> str | None:
    for morsel in c.session.cookie_jar:
        if morsel.key == COOKIE:
            return morsel.value
    return None


async def post(c: TestClient, **body: object):  # type: ignore[no-untyped-def]
    return await c.post("/api/v1/chat", json=body)


async def test_chat_page_issues_an_httponly_samesite_session_and_no_user(web: TestClient) -> None:
    resp = await web.get("/chat")
    assert resp.status == 200
    header = resp.headers["Set-Cookie"]
    assert header.startswith(COOKIE + "=") and "HttpOnly" in header and "SameSite=Lax" in header
    assert "data-user" not in await resp.text()
    r = await post(web, text="你好", msg_id="1")
    assert r.status == 200 and "Set-Cookie" not in r.headers  # the page's session is used
    accounts = await ChannelAccount.filter(channel="web")
    assert len(accounts) == 1 and accounts[0].external_id.startswith("session/")


async def test_first_post_issues_a_session_that_names_the_same_member_after(web: TestClient) -> None:
    r = await post(web, text="你好")
    assert r.status == 200 and COOKIE in r.cookies
    await post(web, text="积分")
    assert await ChannelAccount.filter(channel="web").count() == 1
    web.session.cookie_jar.clear()
    await post(web, text="你好")
    assert await ChannelAccount.filter(channel="web").count() == 2  # a new visitor is a new member


async def test_forged_or_foreign_cookie_never_selects_a_session(web: TestClient) -> None:
    await post(web, text="你好")
    victim = session_cookie(web)
    assert victim
    sid = victim.rpartition(".")[0]
    for forged in (sid + ".00000000000000000000000000000000", session_cookie_value("other-key", sid), sid):
        web.session.cookie_jar.clear()
        web.session.cookie_jar.update_cookies({COOKIE: forged})
        r = await post(web, text="你好")
        assert r.status == 200 and r.cookies[COOKIE].value.rpartition(".")[0] != sid  # a new session
    assert await ChannelAccount.filter(channel="web").count() == 4  # the victim's plus three fresh ones


async def test_bare_user_can_neither_read_nor_act_as_another_member(web: TestClient) -> None:
    """The PUK leak: carol's agent reply is hers alone."""
    services = web.app[SERVICES]
    await chat(web, "carol", text="你好")
    carol = await ChannelAccount.get(channel="web", external_id="carol")
    await services.outbox.to_member(carol.member_id, Reply(text=PUK), purpose="agent", idempotency_key="puk")
    row = await wait_sent(channel="web", member_id=carol.member_id, purpose="agent")

    web.session.cookie_jar.clear()
    r = await web.get("/api/v1/chat/updates", params={"user": "carol", "after": "0"})
    assert r.status == 401 and "error" in await r.json()
    r = await web.get("/api/v1/chat/updates", params={"user": "carol", "user_hash": "0" * 64, "after": "0"})
    assert r.status == 401
    await post(web, text="你好")  # the attacker's own session sees only its own messages
    r = await web.get("/api/v1/chat/updates", params={"after": "0"})
    assert r.status == 200 and (await r.json())["messages"] == []

    before = await TranscriptEntry.filter(member_id=carol.member_id).count()
    for body in (
        {"user": "carol"},
        {"user": "carol", "user_hash": "abc"},
        {"user": "carol", "user_hash": None},
        {"user": ["carol"], "user_hash": as_member("carol")["user_hash"]},
        {"user": "carol/x"},
    ):
        r = await post(web, text="积分", **body)
        assert r.status == 401 and "error" in await r.json()
    assert await TranscriptEntry.filter(member_id=carol.member_id).count() == before

    r = await web.get("/api/v1/chat/updates", params={**as_member("carol"), "after": "0"})
    assert [m["text"] for m in (await r.json())["messages"]] == [PUK] and row.id


async def test_two_members_may_both_send_msg_id_1(web: TestClient) -> None:
    alice = await chat(web, "alice", text="我的流量还剩多少，怎么查？", msg_id="1")
    bob = await chat(web, "bob", text="怎么充值话费", msg_id="1")
    assert bob != alice and bob[0]["text"] != alice[0]["text"]
    bob_member = (await ChannelAccount.get(channel="web", external_id="bob")).member_id
    stored = await TranscriptEntry.get(member_id=bob_member, direction="in")
    assert stored.text == "怎么充值话费" and stored.msg_id == "bob#1"
    again = await chat(web, "bob", text="怎么充值话费", msg_id="1")  # bob's own retry: his first answer
    assert again == bob and await TranscriptEntry.filter(member_id=bob_member, direction="in").count() == 1


async def test_user_is_ignored_without_the_operator_secret(tmp_path: Path) -> None:
    c = await _client(tmp_path, webchat_identity_secret="")
    try:
        r = await post(c, user="carol", text="你好")
        assert r.status == 200
        assert (await post(c, user=42, user_hash=["x"], text="你好")).status == 200
        assert not await ChannelAccount.filter(external_id="carol").exists()
        (account,) = await ChannelAccount.filter(channel="web")
        assert account.external_id.startswith("session/")
    finally:
        await c.close()


async def test_only_json_is_accepted(web: TestClient) -> None:
    for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
        r = await web.post("/api/v1/chat", data=b'{"text": "hi"}', headers={"Content-Type": ctype})
        assert r.status == 415 and "error" in await r.json()
    assert await ChannelAccount.all().count() == 0 and await TranscriptEntry.all().count() == 0


async def test_cross_origin_only_for_allowed_origins(web: TestClient) -> None:
    evil = {"Origin": "https://evil.example"}
    r = await web.post("/api/v1/chat", json={"text": "你好"}, headers=evil)
    assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
    r = await web.options("/api/v1/chat", headers={**evil, "Access-Control-Request-Method": "POST"})
    assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers
    assert await ChannelAccount.all().count() == 0

    shop = {"Origin": "https://shop.example"}
    r = await web.options(
        "/api/v1/chat",
        headers={**shop, "Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"},
    )
    assert r.status == 204
    assert r.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    assert r.headers["Access-Control-Allow-Credentials"] == "true"
    assert "POST" in r.headers["Access-Control-Allow-Methods"]
    assert "content-type" in r.headers["Access-Control-Allow-Headers"].lower()
    r = await web.post("/api/v1/chat", json={**as_member("shopper"), "text": "你好"}, headers=shop)
    assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    r = await web.get("/api/v1/chat/updates", params={**as_member("shopper")}, headers=shop)
    assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    r = await web.get("/api/v1/me", params={**as_member("shopper")}, headers=shop)
    assert r.status == 200 and r.headers["Access-Control-Allow-Origin"] == "https://shop.example"
    r = await web.get("/api/v1/me", params={**as_member("shopper")}, headers=evil)
    assert r.status == 403 and "Access-Control-Allow-Origin" not in r.headers

    same = {"Origin": str(web.make_url("")).rstrip("/")}  # the chat page itself
    r = await web.post("/api/v1/chat", json={"text": "你好"}, headers=same)
    assert r.status == 200 and "Access-Control-Allow-Origin" not in r.headers


@pytest.mark.parametrize("mode", ["embedded", "redis"])
async def test_session_and_address_limits(tmp_path: Path, mode: str, request: pytest.FixtureRequest) -> None:
    redis = {"redis_url": request.getfixturevalue("fresh_redis_url")} if mode == "redis" else {}
    c = await _client(
        tmp_path,
        webchat_rate_per_session=0.01,
        webchat_burst_per_session=3,
        webchat_rate_per_ip=0.01,
        webchat_burst_per_ip=6,
        **redis,
    )
    try:
        if mode == "redis":
            from bot.core.redis_stores import RedisRateLimiter

            assert isinstance(c.app[SERVICES].limiter, RedisRateLimiter)
        statuses = [(await post(c, text="你好", msg_id=str(i))).status for i in range(3)]
        assert statuses == [200] * 3
        r = await post(c, text="你好", msg_id="3", locale="zh_CN")
        assert r.status == 429 and int(r.headers["Retry-After"]) >= 1
        assert "太快" in (await r.json())["error"]
        r = await c.post("/api/v1/chat", json={"text": "hello", "msg_id": "4"}, headers={"Accept-Language": "en"})
        assert r.status == 429 and "too quickly" in (await r.json())["error"]
        # fresh sessions from the same address: the address limit holds
        c.session.cookie_jar.clear()
        r = await post(c, text="你好")
        assert r.status == 200
        c.session.cookie_jar.clear()
        r = await post(c, text="你好")
        assert r.status == 429
        assert await TranscriptEntry.filter(direction="in").count() == 4
        assert await OutboxMessage.all().count() == 0
    finally:
        await c.close()


async def test_fresh_sessions_cannot_mint_members_through_me(tmp_path: Path) -> None:
    c = await _client(tmp_path, webchat_rate_per_ip=0.01, webchat_burst_per_ip=3)
    try:
        statuses = []
        for _ in range(5):
            c.session.cookie_jar.clear()
            assert (await c.get("/chat")).status == 200  # a session costs no rows
            statuses.append((await c.get("/api/v1/me")).status)
        assert statuses == [200, 200, 200, 429, 429]
        assert await ChannelAccount.filter(channel="web").count() == 3
    finally:
        await c.close()
