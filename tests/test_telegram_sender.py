"""The Telegram sender through the real outbox to the loopback Bot API server."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.core.app_keys import SERVICES
from bot.core.channel_registry import SendError
from bot.channels.telegram.mount import TELEGRAM, make_bot
from bot.channels.telegram.render import Part
from bot.channels.telegram.sender import TelegramSender
from bot.core.messages import Outgoing, Reply
from bot.core.models import ChannelAccount, Member
from bot.core.stores import MemoryRateLimiter
from tests.conftest import make_settings
from tests.outbox_waits import wait_status
from tests.fakes.telegram_api import FakeTelegram, fake_tg  # noqa: F401


def settings_for(tmp_path: Path, fake: FakeTelegram, **extra: Any):  # type: ignore[no-untyped-def]
    values: dict[str, Any] = dict(
        telegram_token=fake.token,
        telegram_api_base=fake.url,
        telegram_webhook_secret="s3cret",
        telegram_rate_per_chat=100.0,
        telegram_rate_per_group=100.0,
        telegram_rate_global=1000.0,
        telegram_timeout_seconds=0.5,
    )
    values.update(extra)
    return make_settings(tmp_path, **values)


async def running_app(settings):  # type: ignore[no-untyped-def]
    app = create_app(settings, db_setup="schema")
    client = TestClient(TestServer(app))
    await client.start_server()
    return client


@pytest_asyncio.fixture
async def app_client(tmp_path: Path, fake_tg: FakeTelegram) -> AsyncIterator[TestClient]:  # noqa: F811
    client = await running_app(settings_for(tmp_path, fake_tg))
    yield client
    await client.close()


async def enqueue(client: TestClient, address: str, text: str, **kw: Any) -> int:
    services = client.app[SERVICES]
    row = await services.outbox.enqueue(Outgoing(channel="telegram", address=address, reply=Reply(text=text), **kw))
    return row.id


async def test_outbox_message_is_sent_as_escaped_html(app_client: TestClient, fake_tg: FakeTelegram) -> None:  # noqa: F811
    msg_id = await enqueue(app_client, "5001", "<b>agent</b> says: 5 < 6 & ok", purpose="agent")
    row = await wait_status(msg_id, "sent")
    assert row.status == "sent" and row.segments == 1 and row.provider_ref
    [call] = fake_tg.sent(chat_id=5001)
    assert call.text == "&lt;b&gt;agent&lt;/b&gt; says: 5 &lt; 6 &amp; ok"
    assert call.params["parse_mode"] == "HTML"


async def test_429_waits_retry_after_then_sends(app_client: TestClient, fake_tg: FakeTelegram) -> None:  # noqa: F811
    fake_tg.rate_limit(5002, retry_after=1)
    msg_id = await enqueue(app_client, "5002", "稍后送达")
    row = await wait_status(msg_id, "sent", "dead")
    assert row.status == "sent" and row.attempts == 2
    calls = [c for c in fake_tg.calls if c.chat_id == "5002"]
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 0.95


async def test_403_blocked_marks_member_unreachable(app_client: TestClient, fake_tg: FakeTelegram) -> None:  # noqa: F811
    member = await Member.create(display_name="x")
    await ChannelAccount.create(member=member, channel="telegram", external_id="5003", chat_id="5003")
    fake_tg.block(5003)
    msg_id = await enqueue(app_client, "5003", "通知", member_id=member.id, purpose="notification")
    row = await wait_status(msg_id, "dead")
    assert row.status == "dead" and "blocked" in row.last_error
    account = await ChannelAccount.get(external_id="5003")
    assert account.active is False
    assert len([c for c in fake_tg.calls if c.chat_id == "5003"]) == 1  # not retried


async def test_timeout_after_sending_is_not_repeated(app_client: TestClient, fake_tg: FakeTelegram) -> None:  # noqa: F811
    fake_tg.stall(5004, 1.5)  # answers after the 0.5 s client timeout
    msg_id = await enqueue(app_client, "5004", "可能已送达")
    row = await wait_status(msg_id, "dead", "sent")
    assert row.status == "dead" and "not repeated" in row.last_error
    await asyncio.sleep(0.6)
    assert len([c for c in fake_tg.calls if c.chat_id == "5004"]) == 1


async def test_split_message_retry_does_not_repeat_delivered_parts(
    app_client: TestClient, fake_tg: FakeTelegram
) -> None:  # noqa: F811
    text = "\n\n".join(["甲" * 3000, "乙" * 3000, "丙" * 3000])
    fake_tg.fail("sendMessage", 5005, 429, "Too Many Requests: retry after 1", retry_after=1, skip=1)
    msg_id = await enqueue(app_client, "5005", text)
    row = await wait_status(msg_id, "sent", "dead")
    assert row.status == "sent" and row.segments == 3
    texts = [c.text[0] for c in fake_tg.sent(chat_id=5005)]
    assert texts == ["甲", "乙", "丙"]  # the first part was not sent again
    assert [c.status for c in fake_tg.calls if c.chat_id == "5005"] == [200, 429, 200, 200]


async def test_connection_refused_is_retried_not_ambiguous(tmp_path: Path) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    fake = FakeTelegram()
    fake.url = f"http://127.0.0.1:{port}"  # nothing listens there
    bot = make_bot(settings_for(tmp_path, fake))
    sender = TelegramSender(bot, settings_for(tmp_path, fake), MemoryRateLimiter())
    try:
        with pytest.raises(SendError) as info:
            await sender.send_part("1", Part(text="x", html="x"))
        assert not info.value.ambiguous and not info.value.permanent and not info.value.unreachable
    finally:
        await bot.session.close()


def record_send_times(client: TestClient) -> list[float]:
    """The loop time at which the sender issues each sendMessage (after its pacing).

    The pacing is checked on these rather than on the fake server's arrival times: a
    request's trip over loopback through the busy test process can take a few ms or a
    few tens of ms, which on a loaded machine would bunch two paced arrivals together.
    """
    bot = client.app[TELEGRAM].sender.bot
    real = bot.send_message
    times: list[float] = []

    async def send_message(*args: Any, **kwargs: Any) -> Any:
        times.append(asyncio.get_running_loop().time())
        return await real(*args, **kwargs)

    bot.send_message = send_message  # type: ignore[method-assign]
    return times


def assert_paced(issued: list[float], start: float, interval: float) -> None:
    """The k-th message of a burst that began at ``start`` left no earlier than k intervals
    later.  A stalled loop can only make a send later, so this cannot fail spuriously;
    without pacing the whole burst leaves within milliseconds and it fails."""
    late = [(k, round(t - start, 3)) for k, t in enumerate(sorted(issued)) if t - start < k * interval - 0.005]
    assert not late, late


async def test_burst_to_one_chat_is_paced(tmp_path: Path, fake_tg: FakeTelegram) -> None:  # noqa: F811
    # the 1/s limit scaled to 10/s to keep the test fast: 10 messages span >= 9 intervals
    client = await running_app(settings_for(tmp_path, fake_tg, telegram_rate_per_chat=10.0))
    try:
        issued = record_send_times(client)
        start = asyncio.get_running_loop().time()
        ids = [await enqueue(client, "5006", f"第{i}条") for i in range(10)]
        for i in ids:
            assert (await wait_status(i, "sent", timeout=15)).status == "sent"
        assert len(fake_tg.sent(chat_id=5006)) == 10 and len(issued) == 10
        assert_paced(issued, start, 0.1)
    finally:
        await client.close()


async def test_group_uses_group_rate(tmp_path: Path, fake_tg: FakeTelegram) -> None:  # noqa: F811
    client = await running_app(settings_for(tmp_path, fake_tg, telegram_rate_per_group=5.0))
    try:
        sender = client.app[TELEGRAM].sender
        assert sender.rate_for_address("-100123") == 5.0 and sender.rate_for_address("42") == 100.0
        issued = record_send_times(client)
        start = asyncio.get_running_loop().time()
        ids = [await enqueue(client, "-100123", f"群消息{i}") for i in range(4)]
        for i in ids:
            assert (await wait_status(i, "sent", timeout=15)).status == "sent"
        assert len(fake_tg.sent(chat_id=-100123)) == 4 and len(issued) == 4
        assert_paced(issued, start, 0.2)  # the group rate: 5/s
    finally:
        await client.close()


async def test_default_limits_match_telegram(tmp_path: Path, fake_tg: FakeTelegram) -> None:  # noqa: F811
    s = make_settings(tmp_path, telegram_token=fake_tg.token, telegram_api_base=fake_tg.url)
    sender = TelegramSender(make_bot(s), s, MemoryRateLimiter())
    try:
        assert sender.rate_global == 30.0
        assert sender.rate_for_address("42") == 1.0
        assert sender.rate_for_address("-1001") == pytest.approx(20 / 60)
    finally:
        await sender.bot.session.close()
