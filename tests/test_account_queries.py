"""A business code that reads the member's own account is answered in any chat, for the
member's own number only: the SMS sender's, or the phone verified with 绑定手机."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timezone
from pathlib import Path

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.core.app_keys import SERVICES
from bot.core.messages import Incoming
from bot.core.models import Member
from tests.community_helpers import chat
from tests.conftest import load_sample_kb, make_settings
from tests.fakes.bss import FakeAccountApi

SECRET = "bss-test-secret"
PHONE = "+8613800138000"


@pytest_asyncio.fixture
async def bss() -> AsyncIterator[FakeAccountApi]:
    api = FakeAccountApi(SECRET, accounts={PHONE: {"used": "3.2GB", "left": "6.8GB", "balance": "42.50"}})
    await api.start()
    yield api
    await api.stop()


@pytest_asyncio.fixture
async def app(tmp_path: Path, bss: FakeAccountApi) -> AsyncIterator[TestClient]:
    application = create_app(make_settings(tmp_path, bss_api_base=bss.url, bss_secret=SECRET), db_setup="schema")
    async with TestClient(TestServer(application)) as client:
        await load_sample_kb(application)
        yield client


async def verified(user: str, phone: str) -> None:
    member = await Member.filter(accounts__external_id=user).first()
    assert member is not None
    await Member.filter(id=member.id).update(phone=phone, phone_verified_at=datetime.now(timezone.utc))


async def test_web_member_with_a_verified_phone_gets_their_own_data_left(app: TestClient, bss: FakeAccountApi) -> None:
    first = await chat(app, "carol", text="CXLL")  # not verified yet: told how, nobody's account read
    assert first[0]["kind"] == "account_query" and "绑定手机" in first[0]["text"]
    assert bss.requests == []
    await verified("carol", PHONE)
    [reply] = await chat(app, "carol", text="cxll")
    assert reply["kind"] == "account_query" and "剩余 6.8GB" in reply["text"], reply
    assert bss.requests == [{"code": "CXLL", "phone": PHONE, "locale": "zh_CN"}] and bss.bad_signatures == 0


async def test_sms_sender_reads_the_number_it_wrote_from(app: TestClient, bss: FakeAccountApi) -> None:
    pipeline = app.app[SERVICES].pipeline
    [reply] = await pipeline.process(Incoming(channel="sms", user=PHONE, text="CXYE", msg_id="sms-1"))
    assert "42.50" in reply.text
    assert bss.requests[-1]["phone"] == PHONE


async def test_order_codes_are_never_executed_from_a_chat(app: TestClient, bss: FakeAccountApi) -> None:
    await chat(app, "dave", text="你好")
    await verified("dave", PHONE)
    [reply] = await chat(app, "dave", text="KTLL10")  # orders a data pack on SMS: here it is explained
    assert reply["kind"] == "answer" and bss.requests == []


async def test_api_down_is_said_politely_and_unknown_codes_fall_back(app: TestClient, bss: FakeAccountApi) -> None:
    await chat(app, "erin", text="你好")
    await verified("erin", PHONE)
    bss.down = True
    [reply] = await chat(app, "erin", text="CXLL")
    assert "稍后" in reply["text"] or "几分钟" in reply["text"], reply
    assert [c["action"] for c in reply["choices"]] == ["human"]
    bss.down = False
    [reply] = await chat(app, "erin", text="CXZD")  # a query code the API does not know: the KB answers
    assert reply["kind"] == "answer"


async def test_without_the_api_the_knowledge_base_answers(tmp_path: Path) -> None:
    application = create_app(make_settings(tmp_path), db_setup="schema")
    async with TestClient(TestServer(application)) as client:
        await load_sample_kb(application)
        [reply] = await chat(client, "frank", text="CXLL")
        assert reply["kind"] == "answer" and "CXLL" in reply["text"]


async def test_account_figures_are_never_posted_to_a_group(app: TestClient, bss: FakeAccountApi) -> None:
    pipeline = app.app[SERVICES].pipeline
    [reply] = await pipeline.process(
        Incoming(channel="telegram", user="777", chat="-100", text="CXLL", msg_id="g-cxll", meta={"group": True})
    )
    assert "私聊" in reply.text and bss.requests == []


async def test_queries_share_one_session_per_process_closed_at_shutdown(
    tmp_path: Path,
    bss: FakeAccountApi,
    monkeypatch,  # type: ignore[no-untyped-def]
) -> None:
    from community import account_queries

    application = create_app(make_settings(tmp_path, bss_api_base=bss.url, bss_secret=SECRET), db_setup="schema")
    async with TestClient(TestServer(application)) as client:
        await load_sample_kb(application)
        shared = application[SERVICES].http
        assert shared is not None and not shared.closed
        opened: list[object] = []
        real = account_queries.aiohttp.ClientSession

        def counting(*args, **kwargs):  # type: ignore[no-untyped-def]
            opened.append(kwargs)
            return real(*args, **kwargs)

        monkeypatch.setattr(account_queries.aiohttp, "ClientSession", counting)
        await chat(client, "gina", text="你好")
        await verified("gina", PHONE)
        for _ in range(2):
            [reply] = await chat(client, "gina", text="CXLL")
            assert "剩余 6.8GB" in reply["text"], reply
        assert len(bss.requests) == 2 and opened == []  # both through the shared session
    assert shared.closed
