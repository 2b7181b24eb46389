"""SMPP texts carry no message id: a redelivery (its deliver_sm_resp was lost) is recognised
and answered once; the same text sent deliberately after the window is answered again."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.core.app_keys import SERVICES
from sms_gateway.channel import SMS_RUNTIME
from bot.core.models import OutboxMessage, TranscriptEntry
from sms_gateway.mo_ids import mo_msg_id
from tests.conftest import make_settings
from tests.fakes.smsc import FakeSmsc
from tests.fakes.twilio_api import wait_for

MSISDN = "8613800138000"
PHONE = "+" + MSISDN
WINDOW = 1.0


@pytest_asyncio.fixture
async def smsc() -> AsyncIterator[FakeSmsc]:
    fake = FakeSmsc(redeliver_after=0.3)
    await fake.start()
    yield fake
    await fake.stop()


@pytest_asyncio.fixture
async def app(tmp_path: Path, smsc: FakeSmsc) -> AsyncIterator[TestClient]:
    settings = make_settings(
        tmp_path,
        sms_provider="smpp",
        smpp_host="127.0.0.1",
        smpp_port=smsc.port,
        smpp_system_id="everycsr",
        smpp_password="pw",
        sms_from="10086",
        sms_rate_per_second=200.0,
        sms_mo_redelivery_window_seconds=WINDOW,
    )
    c = TestClient(TestServer(create_app(settings, db_setup="schema")))
    await c.start_server()
    assert await c.app[SMS_RUNTIME].esme.wait_bound(5)
    yield c
    await c.close()


def answers_to(smsc: FakeSmsc) -> int:
    return len([s for s in smsc.submitted if s.destination_addr == MSISDN])


async def _count_sent(rows: int) -> bool:
    return await OutboxMessage.filter(channel="sms", status="sent").count() >= rows


async def test_a_redelivery_after_a_lost_resp_is_answered_once(app: TestClient, smsc: FakeSmsc) -> None:
    smsc.lose_resps = 1
    await smsc.mo(MSISDN, "hello there", check=False)
    await wait_for(lambda: _count_sent(1))
    await asyncio.sleep(0.8)  # the redelivery came and went
    resps = smsc.resps(kind="mo")
    assert [r.attempt for r in resps] == [1, 2] and resps[1].status == 0  # redelivered, then acked
    assert await TranscriptEntry.filter(channel="sms", direction="in").count() == 1
    rows = await OutboxMessage.filter(channel="sms")
    assert len(rows) == await TranscriptEntry.filter(channel="sms", direction="out").count() >= 1
    assert answers_to(smsc) == sum(r.segments for r in rows)  # each answer sent once


async def test_a_redelivery_after_a_restart_is_recognised_from_the_transcript(app: TestClient, smsc: FakeSmsc) -> None:
    services = app.app[SERVICES]
    await smsc.mo(MSISDN, "hello again")
    await wait_for(lambda: _count_sent(1))
    services.dedup._claims = type(services.dedup._claims)()  # the process restarted: its memory is gone
    await smsc.mo(MSISDN, "hello again")  # the SMSC redelivers (its resp was lost with the old process)
    await asyncio.sleep(0.8)
    assert await TranscriptEntry.filter(channel="sms", direction="in").count() == 1
    assert (
        await OutboxMessage.filter(channel="sms").count()
        == await TranscriptEntry.filter(channel="sms", direction="out").count()
    )


async def test_a_deliberate_repeat_after_the_window_is_answered_again(app: TestClient, smsc: FakeSmsc) -> None:
    await smsc.mo(MSISDN, "hello")
    await wait_for(lambda: _count_sent(1))
    first = await OutboxMessage.filter(channel="sms").count()
    await asyncio.sleep(WINDOW + 0.5)
    await smsc.mo(MSISDN, "hello")
    await wait_for(lambda: _count_sent(first + 1))
    assert await TranscriptEntry.filter(channel="sms", direction="in").count() == 2
    ids = await TranscriptEntry.filter(channel="sms", direction="in").values_list("msg_id", flat=True)
    assert len(set(ids)) == 2


async def test_the_smscs_receipted_id_names_the_message_when_present(app: TestClient) -> None:
    services = app.app[SERVICES]
    assert await mo_msg_id(services, PHONE, "hi", "0A1B2C") == "r0A1B2C"
    other = await mo_msg_id(services, "+8613900139000", "hi", None)
    assert other != await mo_msg_id(services, PHONE, "hi", None)  # per sender
    assert await mo_msg_id(services, PHONE, "hi", None) == await mo_msg_id(services, PHONE, "hi", None)
