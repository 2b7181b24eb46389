"""The SMS channel with the Twilio-compatible provider: signed webhooks in, REST out."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer
from defusedxml import ElementTree

from bot.app import create_app
from bot.core.app_keys import SERVICES
from bot.core.messages import Reply
from bot.core.models import ChannelAccount, OutboxMessage, TranscriptEntry
from sms_gateway.twilio import signature
from tests.conftest import load_sample_kb, make_settings
from tests.fakes.twilio_api import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio, wait_for

PHONE = "+8613800138000"


@pytest_asyncio.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio()
    await fake.start()
    yield fake
    await fake.stop()


def sms_settings(tmp_path: Path, twilio: FakeTwilio, **extra: object):  # type: ignore[no-untyped-def]
    return make_settings(
        tmp_path,
        sms_provider="twilio",
        sms_api_base=twilio.base_url,
        sms_account_sid=ACCOUNT_SID,
        sms_auth_token=AUTH_TOKEN,
        sms_from="+15005550006",
        **extra,
    )


async def app_client(settings, *, kb: bool = False) -> TestClient:  # type: ignore[no-untyped-def]
    """The app; the sample knowledge base only for tests that need answers from it (slow)."""
    app = create_app(settings, db_setup="schema")
    c = TestClient(TestServer(app))
    await c.start_server()
    if kb:
        await load_sample_kb(app)
    return c


@pytest_asyncio.fixture
async def sms(tmp_path: Path, twilio: FakeTwilio) -> AsyncIterator[TestClient]:
    c = await app_client(sms_settings(tmp_path, twilio))
    yield c
    await c.close()


@pytest_asyncio.fixture
async def sms_kb(tmp_path: Path, twilio: FakeTwilio) -> AsyncIterator[TestClient]:
    c = await app_client(sms_settings(tmp_path, twilio), kb=True)
    yield c
    await c.close()


def form(body: str, sid: str = "SM1", sender: str = PHONE) -> dict[str, str]:
    return {
        "MessageSid": sid,
        "AccountSid": ACCOUNT_SID,
        "From": sender,
        "To": "+15005550006",
        "Body": body,
        "NumSegments": "1",
    }


async def post_signed(
    client: TestClient,
    path: str,
    data: dict[str, str],
    *,
    url: str | None = None,
    token: str = AUTH_TOKEN,
    sig: str | None = None,
):  # type: ignore[no-untyped-def]
    url = url or str(client.make_url(path))
    headers = {"X-Twilio-Signature": sig if sig is not None else signature(token, url, data.items())}
    return await client.post(path, data=data, headers=headers)


def twiml_messages(xml: str) -> list[str]:
    root = ElementTree.fromstring(xml.encode())
    assert root.tag == "Response"
    return [m.text or "" for m in root.findall("Message")]


async def test_signed_post_is_answered_in_twiml(sms_kb: TestClient) -> None:
    sms = sms_kb
    resp = await post_signed(sms, "/sms/inbound", form("CXLL"))
    assert resp.status == 200
    assert resp.content_type == "text/xml"
    messages = twiml_messages(await resp.text())
    assert len(messages) == 1 and "流量" in messages[0]
    assert re.search(r"回复 ?1", messages[0])  # choices rendered as numbered lines
    account = await ChannelAccount.get(channel="sms")
    assert account.external_id == PHONE  # Incoming.user is the E.164 number


async def test_national_number_is_normalised_to_e164(sms: TestClient) -> None:
    resp = await post_signed(sms, "/sms/inbound", form("cxll", sender="138 0013 8000"))
    assert resp.status == 200
    assert await ChannelAccount.filter(channel="sms", external_id=PHONE).exists()


@pytest.mark.parametrize("sig", ["", "AAAAAAAAAAAAAAAAAAAAAAAAAAA=", None])
async def test_forged_or_missing_signature_is_403_and_nothing_processed(sms: TestClient, sig: str | None) -> None:
    data = form("CXLL", sid="SMforged")
    if sig is None:  # signed with the wrong token
        resp = await post_signed(sms, "/sms/inbound", data, token="not-the-token")
    else:
        resp = await post_signed(sms, "/sms/inbound", data, sig=sig)
    assert resp.status == 403
    assert await TranscriptEntry.all().count() == 0
    assert await ChannelAccount.all().count() == 0


async def test_tampered_body_fails_the_signature(sms: TestClient) -> None:
    data = form("CXLL", sid="SMt")
    url = str(sms.make_url("/sms/inbound"))
    sig = signature(AUTH_TOKEN, url, data.items())
    data["Body"] = "TD"
    resp = await sms.post("/sms/inbound", data=data, headers={"X-Twilio-Signature": sig})
    assert resp.status == 403


async def test_redelivered_message_sid_is_processed_once(sms: TestClient) -> None:
    first = await post_signed(sms, "/sms/inbound", form("怎么充值话费", sid="SMdup"))
    second = await post_signed(sms, "/sms/inbound", form("怎么充值话费", sid="SMdup"))
    assert first.status == second.status == 200
    assert twiml_messages(await first.text()) == twiml_messages(await second.text())
    assert await TranscriptEntry.filter(channel="sms", direction="in").count() == 1


async def test_empty_body_gets_a_polite_answer(sms: TestClient) -> None:
    resp = await post_signed(sms, "/sms/inbound", form("", sid="SMempty"))
    assert resp.status == 200
    messages = twiml_messages(await resp.text())
    assert messages and messages[0].strip()


async def test_1600_character_body_is_processed_whole(sms: TestClient) -> None:
    body = ("我的流量还剩多少怎么查询" * 200)[:1600]
    resp = await post_signed(sms, "/sms/inbound", form(body, sid="SMlong"))
    assert resp.status == 200
    entry = await TranscriptEntry.get(channel="sms", direction="in")
    assert entry.text == body


async def test_emoji_and_rare_cjk_survive_exactly(sms: TestClient) -> None:
    body = "查流量😀𠀀👍🏽 test"
    resp = await post_signed(sms, "/sms/inbound", form(body, sid="SMemoji"))
    assert resp.status == 200
    assert (await TranscriptEntry.get(channel="sms", direction="in")).text == body
    assert twiml_messages(await resp.text())


async def test_non_form_and_missing_fields_are_400(sms: TestClient) -> None:
    resp = await sms.post("/sms/inbound", data=b"{}", headers={"Content-Type": "application/json"})
    assert resp.status == 400
    data = form("hi")
    del data["MessageSid"]
    assert (await post_signed(sms, "/sms/inbound", data)).status == 400
    bad_from = form("hi", sid="SMx", sender="not-a-number")
    resp = await post_signed(sms, "/sms/inbound", bad_from)
    assert resp.status == 400 and "From" in await resp.text()
    assert await TranscriptEntry.all().count() == 0


async def test_long_answer_is_shortened_with_a_more_choice(tmp_path: Path, twilio: FakeTwilio) -> None:
    c = await app_client(sms_settings(tmp_path, twilio, sms_max_segments=1), kb=True)
    try:
        resp = await post_signed(c, "/sms/inbound", form("帮助", sid="SMh1"))
        first = twiml_messages(await resp.text())[0]
        from sms_gateway.encoding import count_segments

        assert count_segments(first) == 1
        m = re.search(r"回复 ?(\d+)[:：] ?看全文", first)
        assert m, first
        resp = await post_signed(c, "/sms/inbound", form(m.group(1), sid="SMh2"))
        page2 = twiml_messages(await resp.text())[0]
        assert count_segments(page2) == 1
        assert page2 != first and page2.strip()
    finally:
        await c.close()


async def test_rest_send_through_outbox_with_status_callback(tmp_path: Path, twilio: FakeTwilio) -> None:
    c = await app_client(sms_settings(tmp_path, twilio, public_url="https://csr.example.com"))
    try:
        await post_signed(c, "/sms/inbound", form("CXLL", sid="SMa"), url="https://csr.example.com/sms/inbound")
        services = c.app[SERVICES]
        account = await ChannelAccount.get(channel="sms")
        text = "您的工单已处理：请重启手机后再试。" + "详细说明" * 60
        row = await services.outbox.to_member(account.member_id, Reply(text=text), purpose="agent")
        assert row is not None
        await wait_for(lambda: OutboxMessage.filter(id=row.id, status="sent").exists())
        sent = twilio.sent[-1]
        assert sent.form["To"] == PHONE and sent.form["From"] == "+15005550006"
        assert sent.form["StatusCallback"] == "https://csr.example.com/sms/status"
        row = await OutboxMessage.get(id=row.id)
        assert row.provider_ref == sent.sid and row.segments == 4  # capped at sms_max_segments
        # Twilio posts the receipt to the public URL; behind the proxy it reaches us here
        local = str(c.make_url("/sms/status"))
        receipt = {"MessageSid": sent.sid, "MessageStatus": "delivered", "AccountSid": ACCOUNT_SID}
        resp = await post_signed(c, "/sms/status", receipt, url="https://csr.example.com/sms/status")
        assert resp.status == 204
        assert (await OutboxMessage.get(id=row.id)).delivery_status == "delivered"
        late = {"MessageSid": sent.sid, "MessageStatus": "sent", "AccountSid": ACCOUNT_SID}
        await post_signed(c, "/sms/status", late, url="https://csr.example.com/sms/status")
        assert (await OutboxMessage.get(id=row.id)).delivery_status == "delivered"  # no regress
        forged = await post_signed(c, "/sms/status", receipt, url=local)  # signed over the wrong URL
        assert forged.status == 403
    finally:
        await c.close()


async def test_failed_delivery_receipt_is_recorded_with_reason(sms: TestClient, twilio: FakeTwilio) -> None:
    services = sms.app[SERVICES]
    await post_signed(sms, "/sms/inbound", form("CXLL", sid="SMb"))
    account = await ChannelAccount.get(channel="sms")
    row = await services.outbox.to_member(account.member_id, Reply(text="您的问题已有新回答"), purpose="agent")
    await wait_for(lambda: OutboxMessage.filter(id=row.id, status="sent").exists())
    sid = (await OutboxMessage.get(id=row.id)).provider_ref
    status = await twilio.status_callback(str(sms.make_url("/sms/status")), sid, "undelivered", error_code="30003")
    assert status == 204
    row = await OutboxMessage.get(id=row.id)
    assert row.delivery_status == "undelivered" and "30003" in row.last_error


async def test_invalid_number_is_never_sent(sms: TestClient, twilio: FakeTwilio) -> None:
    from bot.core.messages import Outgoing

    services = sms.app[SERVICES]
    row = await services.outbox.enqueue(Outgoing(channel="sms", address="12345", reply=Reply(text="hi")))
    await wait_for(lambda: OutboxMessage.filter(id=row.id, status="dead").exists())
    assert "invalid phone number" in (await OutboxMessage.get(id=row.id)).last_error
    assert twilio.sent == []


async def test_provider_errors_retry_or_dead_letter(sms: TestClient, twilio: FakeTwilio) -> None:
    from bot.core.messages import Outgoing

    services = sms.app[SERVICES]
    twilio.failures = [(429, 20429, "Too Many Requests")]
    row = await services.outbox.enqueue(Outgoing(channel="sms", address=PHONE, reply=Reply(text="retry me")))
    await wait_for(lambda: OutboxMessage.filter(id=row.id, status="sent").exists(), timeout=8)
    assert (await OutboxMessage.get(id=row.id)).attempts == 2
    assert [s.form["Body"] for s in twilio.sent] == ["retry me"]
    twilio.failures = [(400, 21211, "The 'To' number is not a valid phone number.")]
    row = await services.outbox.enqueue(Outgoing(channel="sms", address=PHONE, reply=Reply(text="never")))
    await wait_for(lambda: OutboxMessage.filter(id=row.id, status="dead").exists())
    assert "21211" in (await OutboxMessage.get(id=row.id)).last_error


async def test_provider_none_answers_503_and_registers_no_sender(client: TestClient) -> None:
    resp = await client.post("/sms/inbound", data=form("hi"))
    assert resp.status == 503
    assert "BOT_SMS_PROVIDER" in await resp.text()
    assert (await client.post("/sms/status", data={"MessageSid": "x"})).status == 503
    assert "sms" not in client.app[SERVICES].channels.names()
