"""The /wechat callback, driven exactly as WeChat's servers drive it."""

from __future__ import annotations

import asyncio
import time

import pytest

from bot.core.metrics import INBOUND
from bot.core.models import AnswerFeedback, ChannelAccount, TranscriptEntry
from tests.conftest import make_settings
from tests.fakes.wechat_api import TEST_AES_KEY, TEST_APPID, TEST_TOKEN, WeChatCallbacks
from tests.fakes.wechat_api import wechat_api_fixture, wechat_client, wechat_kb_db, wx_fixture  # noqa: F401  (fixtures)

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


async def post(client, wx, xml, *, mode="safe", openid="oUser1", **kw):  # type: ignore[no-untyped-def]
    params, body = wx.build(xml, mode=mode, openid=openid, **kw)
    resp = await client.post("/wechat", params=params, data=body)
    return resp, params


# --- URL verification -----------------------------------------------------------------------
async def test_url_verification_echoes_echostr(client, wx) -> None:
    params, _ = wx.build("<xml/>", mode="plain")
    resp = await client.get("/wechat", params={**params, "echostr": "4389012785617"})
    assert resp.status == 200
    assert await resp.text() == "4389012785617"


async def test_url_verification_refuses_bad_signature(client, wx) -> None:
    for tamper in ("signature", "nonce", "missing"):
        params, _ = wx.build("<xml/>", mode="plain")
        if tamper == "signature":
            params["signature"] = "0" * 40
        elif tamper == "nonce":
            params["nonce"] += "x"
        else:
            del params["signature"]
        resp = await client.get("/wechat", params={**params, "echostr": "abc"})
        assert resp.status == 403, tamper
        assert "abc" not in await resp.text()


async def test_stale_timestamp_is_refused_as_replay(client, wx) -> None:
    old = int(time.time()) - 3600
    resp, _ = await post(client, wx, wx.text_xml("oUser1", QUESTION, "9001"), timestamp=old)
    assert resp.status == 403
    assert await TranscriptEntry.all().count() == 0


# --- the three modes ----------------------------------------------------------------------------
@pytest.mark.parametrize("mode", ["compatible", "safe"])  # plain mode: tests/test_security_wechat.py
async def test_text_question_answered_passively_in_every_mode(client, wx, mode) -> None:
    resp, params = await post(client, wx, wx.text_xml("oUser1", QUESTION, f"10{len(mode)}"), mode=mode)
    assert resp.status == 200
    text = await resp.text()
    if mode != "plain":
        assert "<Encrypt>" in text and "流量" not in text  # nothing readable on the wire
    reply = wx.read_reply(text, params)
    assert reply["MsgType"] == "text"
    assert reply["ToUserName"] == "oUser1" and reply["FromUserName"] == "gh_0123456789ab"
    assert "流量" in reply["Content"]
    assert "回复 1：" in reply["Content"]  # choices degrade to numbered lines
    assert await TranscriptEntry.filter(channel="wechat", direction="in").count() == 1


async def test_numbered_choice_maps_back_to_its_action(client, wx, services) -> None:
    await post(client, wx, wx.text_xml("oUser2", QUESTION, "2001"), openid="oUser2")
    resp, params = await post(client, wx, wx.text_xml("oUser2", "1", "2002"), openid="oUser2")
    reply = wx.read_reply(await resp.text(), params)
    assert reply["MsgType"] == "text"
    # "1" was the 👍 choice: recorded as helpful feedback
    assert await AnswerFeedback.filter(helpful=True, channel="wechat").count() == 1
    assert reply["Content"] != "" and "回复 1" not in reply["Content"]


async def test_forged_safe_mode_requests_are_refused_and_not_processed(client, wx) -> None:
    for what in ("signature", "msg_signature", "missing_msg_signature", "ciphertext", "plain_without_signature"):
        params, body = wx.build(wx.text_xml("oUser3", QUESTION, "3001"), mode="safe", openid="oUser3")
        if what == "signature":
            params["signature"] = "f" * 40
        elif what == "msg_signature":
            params["msg_signature"] = "e" * 40
        elif what == "missing_msg_signature":
            del params["msg_signature"]
        elif what == "ciphertext":  # a different ciphertext under the old msg_signature
            other = WeChatCallbacks(TEST_TOKEN, TEST_AES_KEY, TEST_APPID)
            _, body = other.build(wx.text_xml("oUser3", "转人工", "3001"), mode="safe")
        else:
            params = {"timestamp": params["timestamp"], "nonce": params["nonce"]}
            body = wx.text_xml("oUser3", QUESTION, "3001").encode()
        resp = await client.post("/wechat", params=params, data=body)
        assert resp.status == 403, what
    assert await TranscriptEntry.all().count() == 0
    assert await ChannelAccount.filter(external_id="oUser3").count() == 0


async def test_message_for_another_appid_is_refused(client, wx) -> None:
    stranger = WeChatCallbacks(TEST_TOKEN, TEST_AES_KEY, "wxffffffffffffffff")
    params, body = stranger.build(wx.text_xml("oUser4", QUESTION, "4001"), mode="safe")
    resp = await client.post("/wechat", params=params, data=body)
    assert resp.status == 403
    assert await TranscriptEntry.all().count() == 0


# --- hardening -----------------------------------------------------------------------------------------
HOSTILE = [
    b"<xml><ToUserName>",  # truncated
    b"not xml at all",
    b"<other><a>1</a></other>",
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY a "aaaaaaaaaa"><!ENTITY b "&a;&a;&a;&a;">]><xml><Content>&b;</Content></xml>',
    b'<?xml version="1.0"?><!DOCTYPE x [<!ENTITY e SYSTEM "file:///etc/passwd">]><xml><Content>&e;</Content></xml>',
    b"<xml><MsgType>text</MsgType></xml>",  # no sender
]


async def test_malformed_or_hostile_xml_is_400_without_traceback(client, wx) -> None:
    for body in HOSTILE:
        params, _ = wx.build("<xml/>", mode="plain")
        params["encrypt_type"] = "aes"  # safe mode is configured: plaintext is refused before parsing
        resp = await client.post("/wechat", params=params, data=body)
        assert resp.status == 400, body
        text = await resp.text()
        assert "Traceback" not in text and "aaaaaaaaaa" not in text and "root:" not in text
    assert await TranscriptEntry.all().count() == 0


async def test_bad_ciphertext_is_400(client, wx) -> None:
    from bot.channels.wechat.signature import sign

    params, _ = wx.build("<xml/>", mode="plain")
    junk = "bm90IGEgcmVhbCBjaXBoZXJ0ZXh0"
    params.update(encrypt_type="aes", msg_signature=sign(TEST_TOKEN, params["timestamp"], params["nonce"], junk))
    resp = await client.post("/wechat", params=params, data=f"<xml><Encrypt>{junk}</Encrypt></xml>".encode())
    assert resp.status == 400


async def test_oversize_body_is_413(client, wx) -> None:
    xml = wx.text_xml("oUser5", "x" * (65 * 1024), "5001")
    resp, _ = await post(client, wx, xml, mode="safe", openid="oUser5")
    assert resp.status == 413
    assert await TranscriptEntry.all().count() == 0


# --- retries ---------------------------------------------------------------------------------------------
async def test_retry_storm_is_processed_once_with_one_answer(client, wx) -> None:
    before = INBOUND.labels("wechat")._value.get()
    params, body = wx.build(wx.text_xml("oUser6", QUESTION, "6001"), mode="safe", openid="oUser6")
    # WeChat retries with the same MsgId (and new nonce/timestamp): the same message three times at once
    rebuilt = [wx.build(wx.text_xml("oUser6", QUESTION, "6001"), mode="safe", openid="oUser6") for _ in range(2)]
    requests = [(params, body), *rebuilt]
    responses = await asyncio.gather(*[client.post("/wechat", params=p, data=b) for p, b in requests])
    assert all(r.status == 200 for r in responses)
    contents = [wx.read_reply(await r.text(), p)["Content"] for r, (p, _) in zip(responses, requests)]
    assert len(set(contents)) == 1 and "流量" in contents[0]
    assert await TranscriptEntry.filter(channel="wechat", direction="in", msg_id="6001").count() == 1
    assert await TranscriptEntry.filter(channel="wechat", direction="out").count() == 1
    assert INBOUND.labels("wechat")._value.get() - before == 1


async def test_events_dedup_on_sender_and_create_time(client, wx) -> None:
    xml = wx.event_xml("oUser7", "subscribe", create_time=1700000000)
    first, p1 = await post(client, wx, xml, openid="oUser7")
    second, p2 = await post(client, wx, xml, openid="oUser7")
    a, b = wx.read_reply(await first.text(), p1), wx.read_reply(await second.text(), p2)
    assert a["Content"] == b["Content"]
    assert await TranscriptEntry.filter(channel="wechat", direction="in").count() == 1
