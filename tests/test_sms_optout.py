"""Opt-out keywords (channel-agnostic), their audit trail, and every sender honouring them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from aiohttp.test_utils import TestClient

from bot.core.app_keys import SERVICES
from bot.core.messages import Reply
from bot.core.models import ChannelAccount, Member, OutboxMessage
from community.consent import OptOutEvent
from tests.fakes.twilio_api import FakeTwilio, wait_for
from tests.test_sms_twilio import app_client, form, post_signed, sms_settings, twiml_messages
from tests.community_helpers import as_member


@pytest_asyncio.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio()
    await fake.start()
    yield fake
    await fake.stop()


@pytest_asyncio.fixture
async def sms(tmp_path: Path, twilio: FakeTwilio) -> AsyncIterator[TestClient]:
    c = await app_client(sms_settings(tmp_path, twilio), kb=True)
    yield c
    await c.close()


async def say(c: TestClient, text: str, sid: str) -> str:
    resp = await post_signed(c, "/sms/inbound", form(text, sid=sid))
    assert resp.status == 200
    return "\n".join(twiml_messages(await resp.text()))


async def test_td_opts_out_is_audited_and_honoured_by_the_sender(sms: TestClient, twilio: FakeTwilio) -> None:
    answer = await say(sms, "TD", "SM1")
    assert "退订" in answer
    member = await Member.get(accounts__channel="sms")
    assert member.opted_out
    event = await OptOutEvent.get(member_id=member.id)
    assert (event.channel, event.action, event.source_text) == ("sms", "opt_out", "TD")

    outbox = sms.app[SERVICES].outbox
    offer = await outbox.to_member(member.id, Reply(text="流量包5折优惠"), purpose="offer")
    forward = await outbox.to_member(member.id, Reply(text="朋友转发给您的知识"), purpose="forward")
    agent = await outbox.to_member(member.id, Reply(text="您的工单已处理"), purpose="agent")
    await wait_for(lambda: OutboxMessage.filter(id=agent.id, status="sent").exists())

    async def both_suppressed() -> bool:
        return await OutboxMessage.filter(id__in=[offer.id, forward.id], status="suppressed").count() == 2

    await wait_for(both_suppressed)
    assert [s.form["Body"] for s in twilio.sent] == ["您的工单已处理"]  # solicited still goes

    answer = await say(sms, "订阅", "SM2")
    assert "订阅" in answer
    assert not (await Member.get(id=member.id)).opted_out
    actions = await OptOutEvent.filter(member_id=member.id).order_by("id").values_list("action", flat=True)
    assert actions == ["opt_out", "opt_in"]
    again = await outbox.to_member(member.id, Reply(text="新优惠"), purpose="offer")
    await wait_for(lambda: OutboxMessage.filter(id=again.id, status="sent").exists())


async def test_every_keyword_opts_out(sms: TestClient) -> None:
    for i, word in enumerate(["STOP", "unsubscribe", "退订", "td"]):
        await say(sms, "START", f"SMs{i}")
        await say(sms, word, f"SMk{i}")
        assert (await Member.get(accounts__channel="sms")).opted_out, word


async def test_unsubscribing_one_service_is_not_a_global_opt_out(sms: TestClient) -> None:
    await say(sms, "退订 彩铃", "SMq")
    member = await Member.get(accounts__channel="sms")
    assert not member.opted_out
    assert await OptOutEvent.all().count() == 0


async def test_help_on_sms_lists_the_business_codes(sms: TestClient) -> None:
    answer = await say(sms, "帮助", "SMh")
    assert "CXLL" in answer and "TD" in answer


async def test_keywords_work_on_web_chat_and_help_stays_general(client: TestClient) -> None:
    resp = await client.post("/api/v1/chat", json={**as_member("w1"), "text": "stop"})
    assert (await resp.json())["replies"][0]["kind"] == "optout"
    account = await ChannelAccount.get(channel="web", external_id="w1")
    assert (await Member.get(id=account.member_id)).opted_out
    assert (await OptOutEvent.get(member_id=account.member_id)).channel == "web"
    resp = await client.post("/api/v1/chat", json={**as_member("w2"), "text": "帮助"})
    reply = (await resp.json())["replies"][0]
    assert reply["kind"] == "help" and "CXLL" in reply["text"] and any(c["action"] == "human" for c in reply["choices"])
    resp = await client.post("/api/v1/chat", json={**as_member("w2"), "text": "/start"})
    assert (await resp.json())["replies"][0]["kind"] == "help"  # a greeting, not consent
    assert await OptOutEvent.filter(channel="web").count() == 1
