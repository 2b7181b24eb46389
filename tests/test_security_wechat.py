"""Issue #23 finding 1: WeChat safe-mode downgrade and replay, through HTTP.

Before: with BOT_WECHAT_AES_KEY set, a plaintext callback (no ``encrypt_type``) was accepted
on ``signature(token, timestamp, nonce)`` alone, which does not cover the body, and a
``(timestamp, nonce)`` could be used again and again within the window.
"""

from __future__ import annotations

import pytest
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.core.metrics import SECURITY_REFUSALS
from bot.core.models import TranscriptEntry
from bot.core.nonces import MemoryNonceStore, RedisNonceStore
from tests.conftest import load_sample_kb, make_settings
from tests.fakes.wechat_api import TEST_AES_KEY, TEST_APPID, TEST_TOKEN, WeChatCallbacks
from tests.fakes.wechat_api import wechat_api_fixture, wechat_client, wechat_kb_db, wx_fixture  # noqa: F401

QUESTION = "我的流量还剩多少，怎么查？"


@pytest.fixture
def settings(tmp_path, wechat_api):  # type: ignore[no-untyped-def]
    return make_settings(
        tmp_path,
        wechat_token=TEST_TOKEN,
        wechat_aes_key=TEST_AES_KEY,
        wechat_appid=TEST_APPID,
        wechat_secret=wechat_api.secret,
        wechat_api_base=wechat_api.base,
    )


async def test_plaintext_callback_is_refused_when_safe_mode_is_configured(client, wx) -> None:
    # the attack: a URL seen once in a log, any XML "from" the victim's openid, read the reply
    before = SECURITY_REFUSALS.labels("wechat_plaintext")._value.get()
    params, body = wx.build(wx.text_xml("oVictim", "积分", "7001"), mode="plain", openid="oVictim")
    resp = await client.post("/wechat", params=params, data=body)
    assert resp.status == 403
    assert SECURITY_REFUSALS.labels("wechat_plaintext")._value.get() == before + 1  # visible at /metrics
    assert "积分" not in await resp.text()
    assert await TranscriptEntry.all().count() == 0
    # claiming encryption without a msg_signature is no better
    params["encrypt_type"] = "aes"
    resp = await client.post("/wechat", params=params, data=body)
    assert resp.status in (400, 403)
    assert await TranscriptEntry.all().count() == 0


@pytest.mark.parametrize("mode", ["safe", "compatible"])
async def test_replayed_timestamp_and_nonce_are_refused(client, wx, mode) -> None:
    params, body = wx.build(wx.text_xml("oUser1", QUESTION, "7101"), mode=mode, openid="oUser1")
    first = await client.post("/wechat", params=params, data=body)
    assert first.status == 200 and "流量" in wx.read_reply(await first.text(), params)["Content"]
    again = await client.post("/wechat", params=params, data=body)
    assert again.status == 403
    # a different (validly encrypted) message under the same timestamp and nonce: refused as well
    other, other_body = wx.build(
        wx.text_xml("oUser1", "积分", "7102"),
        mode=mode,
        openid="oUser1",
        timestamp=int(params["timestamp"]),
        nonce=params["nonce"],
    )
    resp = await client.post("/wechat", params=other, data=other_body)
    assert resp.status == 403
    assert await TranscriptEntry.filter(channel="wechat", direction="in").count() == 1


async def test_plain_mode_without_aes_key_works_once_per_nonce(tmp_path, wechat_api) -> None:  # type: ignore[no-untyped-def]
    s = make_settings(
        tmp_path,
        wechat_token=TEST_TOKEN,
        wechat_appid=TEST_APPID,
        wechat_secret=wechat_api.secret,
        wechat_api_base=wechat_api.base,
    )
    wx = WeChatCallbacks(TEST_TOKEN, TEST_AES_KEY, TEST_APPID)
    app = create_app(s, db_setup="schema")
    async with TestClient(TestServer(app)) as c:
        await load_sample_kb(app)
        params, body = wx.build(wx.text_xml("oPlain", QUESTION, "7201"), mode="plain", openid="oPlain")
        ok = await c.post("/wechat", params=params, data=body)
        assert ok.status == 200 and "流量" in await ok.text()
        forged = wx.text_xml("oPlain", "积分", "7202").encode()
        replay = await c.post("/wechat", params=params, data=forged)
        assert replay.status == 403
        assert await TranscriptEntry.filter(channel="wechat", direction="in").count() == 1


async def _exercise(store) -> None:  # type: ignore[no-untyped-def]
    assert await store.first_use("wechat:1:a", 5)
    assert not await store.first_use("wechat:1:a", 5)
    assert await store.first_use("wechat:1:b", 5)
    assert await store.incr("login:x", 60) == 1
    assert await store.incr("login:x", 60) == 2
    assert await store.count("login:x") == 2
    assert await store.decr("login:x") == 1
    await store.reset("login:x")
    assert await store.decr("login:x") == 0 and await store.count("login:x") == 0  # never created by decr
    assert await store.count("login:x") == 0


async def test_nonce_store_in_process_expires() -> None:
    now = [0.0]
    store = MemoryNonceStore(clock=lambda: now[0])
    await _exercise(store)
    now[0] = 10.0
    assert await store.first_use("wechat:1:a", 5)  # remembered for the window only


@pytest.mark.services
async def test_nonce_store_in_redis_is_shared(request) -> None:  # type: ignore[no-untyped-def]
    from bot.core.redis_stores import make_redis

    url = request.getfixturevalue("fresh_redis_url")
    one, two = RedisNonceStore(make_redis(url), owned=True), RedisNonceStore(make_redis(url), owned=True)
    try:
        await _exercise(one)
        assert await one.first_use("wechat:2:z", 5)
        assert not await two.first_use("wechat:2:z", 5)  # another worker sees the same nonce
        await one.incr("login:y", 60)
        assert await two.incr("login:y", 60) == 2
        assert 0 < await one.redis.pttl("everycsr:sec:c:login:y") <= 60_000
    finally:
        await one.close()
        await two.close()
