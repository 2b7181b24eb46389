"""Long polling (`python -m bot run --telegram-polling`) against the loopback Bot API."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.channels.telegram.mount import TELEGRAM
from bot.cli import build_parser
from bot.core.models import TranscriptEntry
from tests.conftest import load_sample_kb, make_settings
from tests.fakes.telegram_api import FakeTelegram, callback_update, fake_tg, message_update  # noqa: F401


async def wait_for(predicate, timeout: float = 10.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while asyncio.get_running_loop().time() < deadline:
        if predicate():
            return True
        await asyncio.sleep(0.02)
    return False


@asynccontextmanager
async def polling_service(tmp_path: Path, fake_tg: FakeTelegram) -> AsyncIterator[TestClient]:  # noqa: F811
    """The service in polling mode with the sample knowledge base, once it has started polling."""
    settings = make_settings(
        tmp_path,
        telegram_token=fake_tg.token,
        telegram_api_base=fake_tg.url,
        telegram_polling=True,
        telegram_rate_per_chat=100.0,
        telegram_rate_global=1000.0,
    )
    app = create_app(settings, db_setup="schema")
    async with TestClient(TestServer(app)) as client:
        await load_sample_kb(app)
        assert await wait_for(lambda: bool(fake_tg.sent("getUpdates")))
        yield client


async def test_polling_answers_updates_once(tmp_path: Path, fake_tg: FakeTelegram) -> None:  # noqa: F811
    async with polling_service(tmp_path, fake_tg) as client:
        assert fake_tg.sent("deleteWebhook")  # Telegram refuses getUpdates while a webhook is set
        await fake_tg.push_update(message_update(300, 7001, "我的流量还剩多少，怎么查？"))
        await fake_tg.push_update(message_update(301, 7002, "/help", lang="en"))
        assert await wait_for(lambda: len(fake_tg.sent(chat_id=7001)) == 1 and len(fake_tg.sent(chat_id=7002)) == 1)
        assert "流量" in fake_tg.sent(chat_id=7001)[0].text
        # the next getUpdates confirms both (offset 302), so they are never fetched again
        assert await wait_for(lambda: any(c.params.get("offset") == "302" for c in fake_tg.sent("getUpdates")))
        await fake_tg.push_update(callback_update(302, 7002, "lang:en", message_id=55))
        assert await wait_for(lambda: bool(fake_tg.sent("answerCallbackQuery")))
        # the spinner is stopped before the update is processed: only the next offset (303)
        # says it was recorded and its answer is in flight, where drain() can wait for it
        assert await wait_for(lambda: any(c.params.get("offset") == "303" for c in fake_tg.sent("getUpdates")))
        await client.app[TELEGRAM].drain()
        assert len(fake_tg.sent(chat_id=7001)) == 1
        assert await TranscriptEntry.filter(msg_id__in=["u300", "u301", "u302"], direction="in").count() == 3


def test_cli_flag_is_wired() -> None:
    args = build_parser().parse_args(["run", "--telegram-polling"])
    assert args.telegram_polling is True


async def test_polling_keeps_an_update_until_it_could_be_recorded(tmp_path: Path, fake_tg: FakeTelegram) -> None:  # noqa: F811
    """The offset moves past an update only once it is processed: a database outage
    delays the answer, it does not lose it."""
    from tortoise import connections

    async with polling_service(tmp_path, fake_tg) as client:
        conn = connections.get("default")
        await conn.execute_script('ALTER TABLE "transcript_entry" RENAME TO "transcript_entry_away"')
        await fake_tg.push_update(message_update(310, 7010, "怎么充值话费"))
        await asyncio.sleep(0.5)  # the first attempt fails; the retry waits 1 s
        assert fake_tg.sent(chat_id=7010) == []
        assert not any(c.params.get("offset") == "311" for c in fake_tg.sent("getUpdates"))
        await conn.execute_script('ALTER TABLE "transcript_entry_away" RENAME TO "transcript_entry"')
        assert await wait_for(lambda: len(fake_tg.sent(chat_id=7010)) == 1)
        assert await wait_for(lambda: any(c.params.get("offset") == "311" for c in fake_tg.sent("getUpdates")))
        await client.app[TELEGRAM].drain()
        assert len(fake_tg.sent(chat_id=7010)) == 1
        assert await TranscriptEntry.filter(msg_id="u310", direction="in").count() == 1
