"""Late answers, events, menus and the customer-service sender against a loopback WeChat API."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

import pytest

from bot.core.messages import Outgoing, Reply
from bot.core.models import AnswerFeedback, ChannelAccount, Member, OutboxMessage, TranscriptEntry
from tests.conftest import make_settings
from tests.outbox_waits import settled
from tests.fakes.wechat_api import TEST_AES_KEY, TEST_APPID, TEST_TOKEN
from tests.fakes.wechat_api import wechat_api_fixture, wechat_client, wechat_kb_db, wx_fixture  # noqa: F401  (fixtures)

QUESTION = "我的流量还剩多少，怎么查？"


@pytest.fixture
def deadline() -> float:
    return 4.0


@pytest.fixture
def settings(tmp_path, wechat_api, deadline):  # type: ignore[no-untyped-def]
    return make_settings(
        tmp_path,
        wechat_token=TEST_TOKEN,
        wechat_aes_key=TEST_AES_KEY,
        wechat_appid=TEST_APPID,
        wechat_secret=wechat_api.secret,
        wechat_api_base=wechat_api.base,
        wechat_reply_deadline_seconds=deadline,
    )


async def post(client, wx, xml, *, openid="oA", mode="safe"):  # type: ignore[no-untyped-def]
    params, body = wx.build(xml, mode=mode, openid=openid)
    resp = await client.post("/wechat", params=params, data=body)
    assert resp.status == 200, await resp.text()
    return wx.read_reply(await resp.text(), params)


async def member_of(openid: str) -> Member:
    account = await ChannelAccount.get(channel="wechat", external_id=openid).select_related("member")
    return account.member


# --- late answers ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("deadline", [0.0005])
async def test_late_answer_says_success_then_arrives_by_custom_send(client, wx, wechat_api, deadline) -> None:
    xml = wx.text_xml("oLate", QUESTION, "7001")
    params, body = wx.build(xml, mode="safe", openid="oLate")
    retries = [wx.build(xml, mode="safe", openid="oLate") for _ in range(2)]
    resps = await asyncio.gather(*[client.post("/wechat", params=p, data=b) for p, b in [(params, body), *retries]])
    assert [await r.text() for r in resps] == ["success"] * 3
    deadline = asyncio.get_running_loop().time() + 10.0
    while not wechat_api.sent and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.2)  # would a second copy follow?
    assert len(wechat_api.sent) == 1
    msg = wechat_api.sent[0]
    assert msg["touser"] == "oLate" and msg["msgtype"] == "text"
    content = msg["text"]["content"]
    assert "流量" in content
    assert 'href="weixin://bizmsgmenu?msgmenucontent=' in content and "msgmenuid=fb:up:" in content
    assert await OutboxMessage.filter(idempotency_key="wechat:7001:0", status="sent").count() == 1
    assert await TranscriptEntry.filter(channel="wechat", direction="in").count() == 1


async def test_tapping_a_menu_link_acts_as_the_choice(client, wx) -> None:
    reply = await post(client, wx, wx.text_xml("oTap", QUESTION, "7101"), openid="oTap")
    item = await TranscriptEntry.filter(channel="wechat", direction="out").first()
    assert item is not None and item.item_id and reply["Content"]
    tap = wx.text_xml("oTap", "👍 有帮助", "7102", extra=f"<bizmsgmenuid>fb:up:{item.item_id}</bizmsgmenuid>")
    await post(client, wx, tap, openid="oTap")
    assert await AnswerFeedback.filter(item_id=item.item_id, helpful=True).count() == 1


# --- events ------------------------------------------------------------------------------------------------
async def test_subscribe_welcomes_and_unsubscribe_deactivates_silently(client, wx, wechat_api, services) -> None:
    welcome = await post(client, wx, wx.event_xml("oSub", "subscribe"), openid="oSub")
    assert "欢迎" in welcome["Content"] and "回复 1：" in welcome["Content"]
    params, body = wx.build(wx.event_xml("oSub", "unsubscribe", create_time=1700000100), openid="oSub")
    resp = await client.post("/wechat", params=params, data=body)
    assert await resp.text() == "success"
    account = await ChannelAccount.get(channel="wechat", external_id="oSub")
    assert account.active is False and account.inactive_reason == "unsubscribed"
    # nothing more is sent there: the sender refuses without calling WeChat
    member = await member_of("oSub")
    row = await services.outbox.enqueue(Outgoing("wechat", "oSub", Reply(text="hi"), member.id, purpose="agent"))
    row = await settled(row.id)
    assert row.status == "dead" and "inactive" in row.last_error
    assert not [c for c in wechat_api.calls if c[0] == "message/custom/send"]


async def test_menu_clicks_map_to_knowledge_items_and_commands(client, wx, services) -> None:
    from community.models import KnowledgeItem

    item = await KnowledgeItem.all().order_by("id").first()
    assert item is not None
    shown = await post(
        client, wx, wx.event_xml("oClick", "CLICK", f"kb:{item.id}", create_time=1700000200), openid="oClick"
    )
    assert "这个回答有帮助吗" in shown["Content"]
    assert await TranscriptEntry.filter(direction="out", item_id=item.id, kind="answer_pick").count() == 1
    helped = await post(client, wx, wx.event_xml("oClick", "CLICK", "帮助", create_time=1700000201), openid="oClick")
    assert "CXLL" in helped["Content"]
    unknown = await post(
        client, wx, wx.event_xml("oClick", "CLICK", "no-such-key", create_time=1700000202), openid="oClick"
    )
    assert "抱歉" in unknown["Content"]


async def test_view_event_is_acknowledged_only(client, wx) -> None:
    params, body = wx.build(wx.event_xml("oView", "VIEW", "https://example.com"), openid="oView")
    resp = await client.post("/wechat", params=params, data=body)
    assert await resp.text() == "success"
    assert await TranscriptEntry.all().count() == 0


async def test_media_gets_polite_what_i_can_do(client, wx) -> None:
    for i, (msg_type, word) in enumerate(
        [("image", "图片"), ("video", "视频"), ("location", "位置"), ("link", "链接"), ("voice", "语音")]
    ):
        reply = await post(client, wx, wx.media_xml("oMedia", msg_type, f"730{i}"), openid="oMedia")
        assert reply["MsgType"] == "text"
        assert "文字" in reply["Content"] and word in reply["Content"] and "帮助" in reply["Content"]


async def test_voice_with_recognition_is_answered_as_text(client, wx) -> None:
    xml = wx.media_xml("oVoice", "voice", "7401", extra=f"<Format>amr</Format><Recognition>{QUESTION}</Recognition>")
    reply = await post(client, wx, xml, openid="oVoice")
    assert "流量" in reply["Content"]


# --- the sender: window, quota, token, fallback --------------------------------------------------------
async def make_account(openid: str, *, last: timedelta | None = timedelta(minutes=1)) -> Member:
    member = await Member.create(display_name=openid)
    await ChannelAccount.create(
        member=member,
        channel="wechat",
        external_id=openid,
        last_inbound_at=datetime.now(timezone.utc) - last if last else None,
    )
    return member


async def test_outside_48h_window_is_held_without_calling_wechat_and_goes_by_sms(client, services, wechat_api) -> None:
    member = await make_account("oOld", last=timedelta(hours=49))
    await ChannelAccount.create(member=member, channel="sms", external_id="+8613800138000")
    row = await services.outbox.enqueue(
        Outgoing("wechat", "oOld", Reply(text="您的工单已处理"), member.id, idempotency_key="t-1", purpose="agent")
    )
    row = await settled(row.id)
    assert row.status == "held"
    assert "48-hour" in row.last_error and "SMS" in row.last_error
    assert wechat_api.calls == [] and wechat_api.token_requests == 0
    sms = await OutboxMessage.get(channel="sms", member_id=member.id)
    assert sms.address == "+8613800138000" and sms.payload["text"] == "您的工单已处理"
    assert sms.idempotency_key == "t-1:sms"


async def test_window_and_quota_errors_hold_with_reason(client, services, wechat_api) -> None:
    for code, words in [(45015, "48-hour"), (45047, "quota")]:
        member = await make_account(f"o{code}")
        wechat_api.fail_next("message/custom/send", code)
        row = await services.outbox.enqueue(
            Outgoing("wechat", f"o{code}", Reply(text="稍后答复"), member.id, purpose="agent")
        )
        row = await settled(row.id)
        assert row.status == "held" and words in row.last_error and str(code) in row.last_error
    assert wechat_api.sent == []
    assert await OutboxMessage.filter(channel="sms").count() == 0  # no SMS account: nothing else queued


@pytest.mark.parametrize("how", ["expire", "revoke"])
async def test_rejected_token_is_refreshed_once_and_the_message_sent(client, services, wechat_api, how) -> None:
    member = await make_account("oTok")
    first = await services.outbox.enqueue(Outgoing("wechat", "oTok", Reply(text="一"), member.id, purpose="agent"))
    assert (await settled(first.id)).status == "sent"
    wechat_api.expire_tokens() if how == "expire" else wechat_api.revoke_tokens()
    second = await services.outbox.enqueue(Outgoing("wechat", "oTok", Reply(text="二"), member.id, purpose="agent"))
    second = await settled(second.id)
    assert second.status == "sent" and second.provider_ref
    assert wechat_api.token_requests == 2
    assert [m["text"]["content"] for m in wechat_api.sent] == ["一", "二"]


async def test_unsubscribed_error_marks_the_account_unreachable(client, services, wechat_api) -> None:
    member = await make_account("oGone")
    wechat_api.unsubscribed.add("oGone")
    row = await services.outbox.enqueue(Outgoing("wechat", "oGone", Reply(text="x"), member.id, purpose="agent"))
    row = await settled(row.id)
    assert row.status == "dead" and "43004" in row.last_error
    assert (await ChannelAccount.get(external_id="oGone")).active is False


async def test_card_reply_goes_as_news(client, services, wechat_api) -> None:
    from bot.core.messages import Card

    member = await make_account("oNews")
    card = Card(
        title="5G 套餐", description="月费 128 元", url="https://example.com/5g", image_url="https://example.com/5g.png"
    )
    row = await services.outbox.enqueue(
        Outgoing("wechat", "oNews", Reply(text="", cards=[card]), member.id, purpose="offer")
    )
    assert (await settled(row.id)).status == "sent"
    article = wechat_api.sent[0]["news"]["articles"][0]
    assert article == {
        "title": "5G 套餐",
        "description": "月费 128 元",
        "url": "https://example.com/5g",
        "picurl": "https://example.com/5g.png",
    }


# --- one answer per MsgId, whatever the timing of retries ------------------------------------------------
@pytest.mark.parametrize("deadline", [0.4])
@pytest.mark.parametrize("retry_at", [0.5, 0.7, 1.6])  # while it is computed, just as it is done, after it was queued
async def test_a_retry_never_adds_a_passive_answer_to_a_late_one(
    client, wx, wechat_api, services, deadline, retry_at, monkeypatch
) -> None:
    router = services.pipeline.router
    original = router.dispatch

    async def slow(ctx):  # type: ignore[no-untyped-def]
        await asyncio.sleep(0.7)  # past the reply deadline: the first callback goes late
        return await original(ctx)

    monkeypatch.setattr(router, "dispatch", slow)
    xml = wx.text_xml("oTwice", QUESTION, "7100")
    first = asyncio.create_task(post(client, wx, xml, openid="oTwice"))
    await asyncio.sleep(retry_at)
    retry = await post(client, wx, xml, openid="oTwice")
    assert await first == {}  # "success": it went late
    end = asyncio.get_running_loop().time() + 5
    while asyncio.get_running_loop().time() < end:
        if await OutboxMessage.filter(idempotency_key="wechat:7100:0", status="sent").exists():
            break
        await asyncio.sleep(0.02)
    await asyncio.sleep(0.3)  # would a second copy follow?
    passive = 1 if retry else 0
    if passive:
        assert "流量" in retry["Content"]
    assert passive + len(wechat_api.sent) == 1, (retry, wechat_api.sent)
    assert await TranscriptEntry.filter(channel="wechat", direction="in").count() == 1
