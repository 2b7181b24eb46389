"""deliver_sm is acknowledged only once handled: ESME_ROK after the message is stored,
ESME_RX_T_APPN (the SMSC retries) when it cannot be — against the loopback SMSC."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio
from aiohttp.test_utils import TestClient
from tortoise import connections

from bot.core.app_keys import SERVICES
from sms_gateway.channel import SMS_RUNTIME
from bot.core.messages import Outgoing, Reply
from bot.core.models import ChannelAccount, OutboxMessage, TranscriptEntry
from sms_gateway.models import SmsPart
from sms_gateway.smpp import ESME_ROK, ESME_RX_T_APPN
from tests.fakes.smsc import FakeSmsc
from tests.fakes.twilio_api import wait_for
from tests.test_sms_smpp import app  # noqa: F401  (fixture, with this module's smsc)

MSISDN = "8613800138000"
PHONE = "+" + MSISDN


@pytest_asyncio.fixture
async def smsc() -> AsyncIterator[FakeSmsc]:
    fake = FakeSmsc(redeliver_after=0.3)
    await fake.start()
    yield fake
    await fake.stop()


async def test_mo_is_acked_only_after_its_transcript_row_exists(app: TestClient, smsc: FakeSmsc) -> None:
    assert await smsc.mo(MSISDN, "hello there") == ESME_ROK
    # no waiting: by the time the SMSC has its resp, the text is recorded
    entry = await TranscriptEntry.get_or_none(channel="sms", direction="in")
    assert entry is not None and entry.text == "hello there"
    [resp] = smsc.resps(kind="mo")
    assert resp.status == ESME_ROK and resp.attempt == 1
    assert resp.at >= entry.created_at.timestamp()  # the resp left after the row was written


async def test_unrecordable_mo_gets_a_temporary_error_and_the_redelivery_is_processed_once(
    app: TestClient,
    smsc: FakeSmsc,
) -> None:
    conn = connections.get("default")
    await conn.execute_script('ALTER TABLE "transcript_entry" RENAME TO "transcript_entry_away"')
    try:
        assert await smsc.mo(MSISDN, "how do I top up", check=False) == ESME_RX_T_APPN
        assert smsc.submitted == [] and await OutboxMessage.filter(channel="sms").count() == 0
        assert app.app[SMS_RUNTIME].esme.stats.deliver_temp_errors == 1
    finally:
        await conn.execute_script('ALTER TABLE "transcript_entry_away" RENAME TO "transcript_entry"')
    assert await TranscriptEntry.filter(channel="sms").count() == 0  # nothing half-written
    await wait_for(lambda: TranscriptEntry.filter(channel="sms", direction="in").exists())  # the SMSC's retry
    await wait_for(lambda: OutboxMessage.filter(channel="sms", status="sent").exists())
    await asyncio.sleep(1.0)  # longer than the SMSC's retry delay: no further redelivery comes
    resps = smsc.resps(kind="mo")
    assert [r.status for r in resps] == [ESME_RX_T_APPN, ESME_ROK]
    assert {r.number for r in resps} == {resps[0].number} and [r.attempt for r in resps] == [1, 2]
    [entry] = await TranscriptEntry.filter(channel="sms", direction="in")
    assert entry.text == "how do I top up"
    assert await ChannelAccount.filter(channel="sms", external_id=PHONE).count() == 1
    outbox = await OutboxMessage.filter(channel="sms", address=PHONE)
    assert len(outbox) == await TranscriptEntry.filter(channel="sms", direction="out").count() >= 1  # answered once
    assert len([s for s in smsc.submitted if s.destination_addr == MSISDN]) == sum(r.segments for r in outbox)


async def test_delivery_receipts_are_acked_ok(app: TestClient, smsc: FakeSmsc) -> None:
    services = app.app[SERVICES]
    row = await services.outbox.enqueue(Outgoing(channel="sms", address="+8613900139000", reply=Reply(text="Hello")))
    await wait_for(lambda: OutboxMessage.filter(id=row.id, delivery_status="delivered").exists())
    await wait_for(lambda: len(smsc.resps(kind="receipt")) == 1)
    assert [r.status for r in smsc.resps(kind="receipt")] == [ESME_ROK]
    assert await SmsPart.filter(outbox_id=row.id, delivery_status="delivered").count() == 1
