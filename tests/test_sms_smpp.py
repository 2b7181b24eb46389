"""The SMPP provider against a loopback SMSC speaking real SMPP 3.4 PDUs."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.core.app_keys import SERVICES
from sms_gateway.channel import SMS_RUNTIME
from bot.core.messages import Outgoing, Reply
from bot.core.models import ChannelAccount, OutboxMessage, TranscriptEntry
from sms_gateway.encoding import DC_UCS2, Reassembler, decode_body, segment, split_udh
from sms_gateway.models import SmsPart
from sms_gateway.smpp import SmppConfig, SmppEsme
from tests.conftest import load_sample_kb, make_settings
from tests.fakes.smsc import FakeSmsc
from tests.fakes.twilio_api import wait_for

PHONE = "+8613800138000"


@pytest_asyncio.fixture
async def smsc() -> AsyncIterator[FakeSmsc]:
    fake = FakeSmsc()
    await fake.start()
    yield fake
    await fake.stop()


def esme_for(smsc: FakeSmsc, **kw: object) -> SmppEsme:
    cfg = SmppConfig(
        host="127.0.0.1",
        port=smsc.port,
        system_id="everycsr",
        password="pw",
        source_addr="10086",
        rate=kw.pop("rate", 500.0),
        reconnect_min=0.05,
        **kw,
    )  # type: ignore[arg-type]
    return SmppEsme(cfg)


def texts_of(smsc: FakeSmsc, dest: str) -> str:
    """Reassemble what the SMSC received for ``dest`` (as a handset would)."""
    r, out = Reassembler(), []
    for s in (x for x in smsc.submitted if x.destination_addr == dest):
        if s.esm_class & 0x40:
            concat, body = split_udh(s.short_message)
            assert concat is not None
            text = r.add(dest, concat, body, s.data_coding)
            if text is not None:
                out.append(text)
        else:
            out.append(decode_body(s.short_message, s.data_coding))
    return "\n---\n".join(out)


# --- the ESME on its own ------------------------------------------------------------------
async def test_bind_submit_concatenated_and_stop(smsc: FakeSmsc) -> None:
    esme = esme_for(smsc)
    await esme.start()
    try:
        assert await esme.wait_bound(5)
        await wait_for(lambda: smsc.binds == ["everycsr"])
        text = "您好，" * 50 + "😀"
        ids = await esme.submit("8613800138000", segment(text, 42))
        assert len(ids) == 3 and len(set(ids)) == 3
        parts = smsc.submitted
        assert all(p.esm_class == 0x40 and p.data_coding == DC_UCS2 and len(p.short_message) <= 140 for p in parts)
        assert all(p.registered_delivery == 1 and p.source_addr == "10086" for p in parts)
        assert texts_of(smsc, "8613800138000") == text
    finally:
        started = asyncio.get_running_loop().time()
        await esme.stop()  # smpp34 closes on unbind without unbind_resp: must not hang
        # (it takes milliseconds; the bound is loose so that a loaded machine does not fail it,
        # and still far below the 10 s response timeout a hang on unbind_resp would cost)
        assert asyncio.get_running_loop().time() - started < 5.0


async def test_gsm_escapes_and_backtick(smsc: FakeSmsc) -> None:
    esme = esme_for(smsc)
    await esme.start()
    try:
        await esme.wait_bound(5)
        await esme.submit("1", segment("cost {5€} [ok]", 1))
        await esme.submit("2", segment("use `code`", 2))
        gsm, ucs = smsc.submitted
        assert gsm.data_coding == 0 and gsm.short_message == b"cost \x1b\x285\x1b\x65\x1b\x29 \x1b\x3cok\x1b\x3e"
        assert ucs.data_coding == 8 and decode_body(ucs.short_message, 8) == "use `code`"
    finally:
        await esme.stop()


async def test_throttling_is_waited_out_without_duplicates() -> None:
    smsc = FakeSmsc(throttle_rate=20, throttle_burst=1)
    await smsc.start()
    esme = esme_for(smsc, rate=200.0, throttle_backoff=0.05)
    await esme.start()
    try:
        await esme.wait_bound(5)
        ids = await asyncio.gather(*[esme.submit(f"86138{i:08d}", segment(f"msg {i}", i)) for i in range(15)])
        assert smsc.throttled > 0 and esme.stats.throttled == smsc.throttled
        assert len(smsc.submitted) == 15  # every message accepted exactly once
        assert sorted(s.destination_addr for s in smsc.submitted) == sorted(f"86138{i:08d}" for i in range(15))
        assert len({i[0] for i in ids}) == 15
    finally:
        await esme.stop()
        await smsc.stop()


async def test_window_bounds_outstanding_submits() -> None:
    smsc = FakeSmsc(hold_responses=True)
    await smsc.start()
    esme = esme_for(smsc, window=4)
    await esme.start()
    try:
        await esme.wait_bound(5)
        tasks = [asyncio.create_task(esme.submit(str(100 + i), segment("x", i))) for i in range(10)]
        await wait_for(lambda: len(smsc.held) >= 4)
        await asyncio.sleep(0.3)  # would a fifth follow?
        assert len(smsc.held) == 4  # no more than the window without a response
        answered = 0
        for _ in range(2):
            answered += len(smsc.held)
            smsc.release_held()
            # each response frees one slot of the window for the next submit
            await wait_for(lambda: len(smsc.held) >= min(4, 10 - answered))
            await asyncio.sleep(0.1)
            assert len(smsc.held) == min(4, 10 - answered)
        smsc.hold_responses = False
        smsc.release_held()
        await asyncio.wait_for(asyncio.gather(*tasks), 5)
        assert len(smsc.submitted) == 10
    finally:
        await esme.stop()
        await smsc.stop()


async def test_enquire_link_keeps_an_idle_session_alive(smsc: FakeSmsc) -> None:
    esme = esme_for(smsc, enquire_link_seconds=0.15)
    await esme.start()
    try:
        await esme.wait_bound(5)
        # one enquire_link per 0.15 s of silence: three of them take ~0.5 s (more when busy)
        await wait_for(lambda: esme.stats.enquire_link_resps >= 3)
        assert esme.stats.enquire_links >= 3 and esme.stats.enquire_link_resps >= 3
        assert esme.stats.reconnects == 0 and esme.connected.is_set()
    finally:
        await esme.stop()


async def test_reconnects_after_the_smsc_unbinds(smsc: FakeSmsc) -> None:
    esme = esme_for(smsc)
    await esme.start()
    try:
        await esme.wait_bound(5)
        await wait_for(lambda: len(smsc.sessions) == 1)
        await smsc.unbind_all()
        await wait_for(lambda: len(smsc.binds) == 2 and esme.connected.is_set())
        assert esme.stats.reconnects >= 1
        assert await esme.submit("1", segment("after reconnect", 3))
    finally:
        await esme.stop()


async def test_binds_with_backoff_once_the_smsc_comes_up() -> None:
    smsc = FakeSmsc()
    from tests.fakes.smsc import free_port

    smsc.port = free_port()
    esme = esme_for(smsc)
    await esme.start()
    try:
        await asyncio.sleep(0.3)  # connection refused, retrying
        assert not esme.connected.is_set()
        await smsc.start()
        assert await esme.wait_bound(5)
    finally:
        await esme.stop()
        await smsc.stop()


# --- the channel through the app --------------------------------------------------------------
async def start_app(tmp_path: Path, smsc: FakeSmsc, *, kb: bool) -> TestClient:
    settings = make_settings(
        tmp_path,
        sms_provider="smpp",
        smpp_host="127.0.0.1",
        smpp_port=smsc.port,
        smpp_system_id="everycsr",
        smpp_password="pw",
        sms_from="10086",
        sms_rate_per_second=200.0,
    )
    c = TestClient(TestServer(create_app(settings, db_setup="schema")))
    await c.start_server()
    if kb:  # slow: only where answers from the knowledge base matter
        await load_sample_kb(c.app)
    assert await c.app[SMS_RUNTIME].esme.wait_bound(5)
    return c


@pytest_asyncio.fixture
async def app(tmp_path: Path, smsc: FakeSmsc) -> AsyncIterator[TestClient]:
    c = await start_app(tmp_path, smsc, kb=False)
    yield c
    await c.close()


@pytest_asyncio.fixture
async def app_kb(tmp_path: Path, smsc: FakeSmsc) -> AsyncIterator[TestClient]:
    c = await start_app(tmp_path, smsc, kb=True)
    yield c
    await c.close()


async def test_mo_is_answered_by_submit_sm_and_dlr_updates_the_outbox(app_kb: TestClient, smsc: FakeSmsc) -> None:
    await smsc.mo("8613800138000", "CXLL")
    await wait_for(lambda: OutboxMessage.filter(channel="sms", status="sent").exists())
    row = await OutboxMessage.get(channel="sms")
    assert row.address == PHONE
    parts = [s for s in smsc.submitted if s.destination_addr == "8613800138000"]
    assert row.segments == len(parts) >= 2  # the answer is a multi-part UCS-2 message
    answer = texts_of(smsc, "8613800138000")
    assert "流量" in answer and "回复 1" in answer
    await wait_for(lambda: OutboxMessage.filter(id=row.id, delivery_status="delivered").exists())
    # delivered only once every part's receipt is in
    assert await SmsPart.filter(outbox_id=row.id, delivery_status="delivered").count() == len(parts)
    assert (await ChannelAccount.get(channel="sms")).external_id == PHONE


async def test_pending_choice_digit_maps_back_over_smpp(app_kb: TestClient, smsc: FakeSmsc) -> None:
    await smsc.mo("8613800138000", "CXLL")
    await wait_for(lambda: OutboxMessage.filter(channel="sms", status="sent").exists())
    await smsc.mo("8613800138000", "1")  # "回复 1: 👍 有帮助"
    await wait_for(lambda: TranscriptEntry.filter(channel="sms", direction="out", kind="feedback").exists())


async def test_concatenated_mo_is_reassembled_exactly(app: TestClient, smsc: FakeSmsc) -> None:
    text = "我想问一下" + "𠀀😀" * 40 + "流量怎么查"  # surrogate pairs straddle the parts
    total = await smsc.mo_concatenated("8613800138000", text, order=None)
    assert total >= 2
    await wait_for(lambda: TranscriptEntry.filter(channel="sms", direction="in").exists())
    entries = await TranscriptEntry.filter(channel="sms", direction="in")
    assert [e.text for e in entries] == [text]


async def test_out_of_order_parts_reassemble(app: TestClient, smsc: FakeSmsc) -> None:
    text = "请问" + "话费余额查询" * 15  # 184 octets: two parts
    await smsc.mo_concatenated("8613800138000", text, order=[2, 1])
    await wait_for(lambda: TranscriptEntry.filter(channel="sms", direction="in").exists())
    assert (await TranscriptEntry.get(channel="sms", direction="in")).text == text


async def test_failed_receipt_is_recorded_with_reason(app: TestClient, smsc: FakeSmsc) -> None:
    smsc.receipt_status["8613900139000"] = "UNDELIV"
    services = app.app[SERVICES]
    row = await services.outbox.enqueue(Outgoing(channel="sms", address="+8613900139000", reply=Reply(text="Hello")))
    await wait_for(lambda: OutboxMessage.filter(id=row.id, delivery_status="undelivered").exists())
    row = await OutboxMessage.get(id=row.id)
    assert row.status == "sent" and "undelivered" in row.last_error and "001" in row.last_error


async def test_smsc_rejection_of_destination_is_permanent(app: TestClient, smsc: FakeSmsc) -> None:
    smsc.reject["8613700137000"] = 0x0B  # ESME_RINVDSTADR
    services = app.app[SERVICES]
    row = await services.outbox.enqueue(Outgoing(channel="sms", address="+8613700137000", reply=Reply(text="Hi")))
    await wait_for(lambda: OutboxMessage.filter(id=row.id, status="dead").exists())
    assert "0000000B" in (await OutboxMessage.get(id=row.id)).last_error


async def test_inbound_webhook_is_404_with_smpp(app: TestClient) -> None:
    resp = await app.post("/sms/inbound", data={"Body": "x"})
    assert resp.status == 404


async def test_stop_while_the_smsc_is_unreachable_is_prompt() -> None:
    from tests.fakes.smsc import free_port

    esme = SmppEsme(SmppConfig(host="127.0.0.1", port=free_port(), system_id="x", password="y", reconnect_min=5))
    await esme.start()
    await asyncio.sleep(0.1)
    started = asyncio.get_running_loop().time()
    await esme.stop()
    # prompt: not after the 5 s reconnect backoff (>= 4 s with jitter); loose for a busy machine
    assert asyncio.get_running_loop().time() - started < 3.0
    assert not esme.connected.is_set()
