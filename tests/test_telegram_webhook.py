"""The Telegram webhook end to end: real Update JSON in, Bot API calls out (loopback)."""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import AsyncIterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.core.app_keys import OUTBOX_WORKER, SERVICES
from bot.channels.telegram.mount import TELEGRAM
from bot.core.models import ChannelAccount, OutboxMessage, TranscriptEntry
from tests.conftest import load_sample_kb, make_settings
from tests.fakes.telegram_api import (
    BOT_USERNAME,
    FakeTelegram,
    bot_message,
    callback_update,
    fake_tg,  # noqa: F401  (fixture)
    member_update,
    message_update,
)

SECRET = "s3cret"


@dataclass
class TG:
    client: TestClient
    fake: FakeTelegram

    async def post(self, update: Any, *, secret: str | None = SECRET, raw: bytes | None = None) -> int:
        headers = {"Content-Type": "application/json"}
        if secret is not None:
            headers["X-Telegram-Bot-Api-Secret-Token"] = secret
        body = raw if raw is not None else json.dumps(update, ensure_ascii=False).encode()
        resp = await self.client.post("/telegram/webhook", data=body, headers=headers)
        return resp.status

    async def settle(self) -> None:
        await self.client.app[TELEGRAM].drain()

    async def send(self, update: dict[str, Any]) -> None:
        assert await self.post(update) == 200
        await self.settle()


def fast_settings(tmp_path: Path, fake: FakeTelegram, **extra: Any):  # type: ignore[no-untyped-def]
    values: dict[str, Any] = dict(
        telegram_token=fake.token,
        telegram_api_base=fake.url,
        telegram_webhook_secret=SECRET,
        telegram_rate_per_chat=100.0,
        telegram_rate_per_group=100.0,
        telegram_rate_global=1000.0,
    )
    values.update(extra)
    return make_settings(tmp_path, **values)


@pytest_asyncio.fixture
async def tg(tmp_path: Path, fake_tg: FakeTelegram) -> AsyncIterator[TG]:  # noqa: F811
    app = create_app(fast_settings(tmp_path, fake_tg), db_setup="schema")
    async with TestClient(TestServer(app)) as c:
        await load_sample_kb(app)
        yield TG(c, fake_tg)


async def test_private_question_is_answered_with_escaped_html_and_keyboard(tg: TG) -> None:
    await tg.send(message_update(1, 1001, "我的流量还剩多少，怎么查？"))
    [call] = tg.fake.sent(chat_id=1001)
    assert call.params["parse_mode"] == "HTML"
    assert "流量" in call.text
    actions = [b["callback_data"] for b in call.buttons()]
    assert any(a.startswith("fb:up:") for a in actions) and any(a.startswith("fb:down:") for a in actions)
    assert any(a.startswith("fw:") for a in actions)
    account = await ChannelAccount.get(channel="telegram", external_id="1001")
    assert account.chat_id == "1001"


async def test_wrong_or_missing_secret_is_401_and_nothing_is_processed(tg: TG) -> None:
    assert await tg.post(message_update(2, 1002, "查话费"), secret=None) == 401
    assert await tg.post(message_update(3, 1002, "查话费"), secret="wrong") == 401
    await tg.settle()
    assert tg.fake.sent() == []
    assert await TranscriptEntry.all().count() == 0


async def test_malformed_bodies_are_400_never_500(tg: TG) -> None:
    for raw in (b"{not json", b"[1, 2]", b'"x"', b'{"update_id": "abc"}', b"\xff\xfe", b'{"message": {}}'):
        assert await tg.post(None, raw=raw) == 400, raw
    await tg.settle()
    assert await TranscriptEntry.all().count() == 0


async def test_redelivered_update_is_processed_once(tg: TG) -> None:
    update = message_update(10, 1010, "怎么充值话费")
    statuses = await asyncio.gather(*[tg.post(update) for _ in range(3)])
    assert statuses == [200, 200, 200]
    await tg.settle()
    assert await tg.post(update) == 200  # a late retry, after the first was answered
    await tg.settle()
    assert len(tg.fake.sent(chat_id=1010)) == 1
    assert await TranscriptEntry.filter(msg_id="u10").count() == 1


async def test_start_with_deep_link_payload_reaches_pipeline_as_start_event(tg: TG) -> None:
    await tg.send(message_update(20, 1020, "/start fw_abc123", lang="en"))
    entry = await TranscriptEntry.get(msg_id="u20")
    assert entry.action == "start"
    [call] = tg.fake.sent(chat_id=1020)
    assert not re.search(r"[\u4e00-\u9fff]", call.text)  # language_code "en" -> English
    await tg.send(message_update(23, 1023, "/start", lang="en"))
    assert "Welcome" in tg.fake.sent(chat_id=1023)[0].text


async def test_language_code_hints_locale(tg: TG) -> None:
    await tg.send(message_update(21, 1021, "/help", lang="zh-hant"))
    await tg.send(message_update(22, 1022, "/help", lang="zh-hans"))
    tw = tg.fake.sent(chat_id=1021)[0].text
    cn = tg.fake.sent(chat_id=1022)[0].text
    assert tw != cn  # traditional vs simplified
    member_tw = (await ChannelAccount.get(external_id="1021").select_related("member")).member
    member_cn = (await ChannelAccount.get(external_id="1022").select_related("member")).member
    assert (member_tw.locale, member_cn.locale) == ("zh_TW", "zh_CN")


async def test_callback_query_is_answered_then_followed_up(tg: TG) -> None:
    await tg.send(message_update(30, 1030, "我的流量还剩多少，怎么查？"))
    answer = tg.fake.sent(chat_id=1030)[0]
    up = next(b["callback_data"] for b in answer.buttons() if b["callback_data"].startswith("fb:up:"))
    await tg.send(callback_update(31, 1030, up, message_id=1001))
    methods = [c.method for c in tg.fake.calls if c.method in ("answerCallbackQuery", "sendMessage", "editMessageText")]
    assert methods[-2:] == ["answerCallbackQuery", "sendMessage"]  # the spinner stops first
    [ack] = tg.fake.sent("answerCallbackQuery")
    assert ack.params["callback_query_id"] == "cb31"
    assert "反馈" in tg.fake.sent(chat_id=1030)[-1].text


async def _answer_then_press_down(tg: TG, uid: int, base: int) -> tuple[Any, str]:
    await tg.send(message_update(base, uid, "我的流量还剩多少，怎么查？"))
    answer = tg.fake.sent(chat_id=uid)[0]
    down = next(b["callback_data"] for b in answer.buttons() if b["callback_data"].startswith("fb:down:"))
    return answer, down


async def test_button_whose_answer_has_choices_edits_the_pressed_message(tg: TG) -> None:
    answer, down = await _answer_then_press_down(tg, 1032, 32)
    await tg.send(callback_update(33, 1032, down, message_id=1001, text=answer.text))
    [edit] = tg.fake.sent("editMessageText")
    assert edit.params["message_id"] == "1001" and edit.chat_id == "1032"
    assert {b["callback_data"] for b in edit.buttons()} == {"post", "human"}
    assert len(tg.fake.sent(chat_id=1032)) == 1  # no extra message
    assert tg.fake.sent("answerCallbackQuery")


async def test_edit_that_fails_falls_back_to_a_new_message(tg: TG) -> None:
    answer, down = await _answer_then_press_down(tg, 1033, 34)
    tg.fake.fail("editMessageText", 1033, 400, "Bad Request: message can't be edited")
    await tg.send(callback_update(35, 1033, down, message_id=1001, text=answer.text))
    follow = tg.fake.sent(chat_id=1033)
    assert len(follow) == 2
    assert {b["callback_data"] for b in follow[-1].buttons()} == {"post", "human"}


async def test_my_chat_member_kicked_is_an_unsubscribe_event(tg: TG) -> None:
    await tg.send(message_update(40, 1040, "查话费"))
    await tg.send(member_update(41, 1040))
    entry = await TranscriptEntry.get(msg_id="u41")
    assert entry.action == "unsubscribe"
    assert len(tg.fake.sent(chat_id=1040)) == 1  # nothing is sent to someone who blocked us


async def test_edited_message_is_answered_again(tg: TG) -> None:
    await tg.send(message_update(50, 1050, "火星"))
    await tg.send(message_update(51, 1050, "我的流量还剩多少，怎么查？", message_id=50, edited=True))
    assert len(tg.fake.sent(chat_id=1050)) == 2
    assert "流量" in tg.fake.sent(chat_id=1050)[-1].text


async def test_group_message_without_mention_is_ignored(tg: TG) -> None:
    await tg.send(message_update(60, 1060, "我的流量还剩多少，怎么查？", chat_id=-100777, chat_type="supergroup"))
    assert tg.fake.sent() == []
    assert await TranscriptEntry.all().count() == 0


async def test_group_message_with_mention_is_answered_in_thread(tg: TG) -> None:
    text = f"@{BOT_USERNAME} 我的流量还剩多少，怎么查？"
    await tg.send(message_update(61, 1061, text, chat_id=-100777, chat_type="supergroup", message_id=9001))
    [call] = tg.fake.sent(chat_id=-100777)
    assert "流量" in call.text
    assert json.loads(call.params["reply_parameters"])["message_id"] == 9001
    entry = await TranscriptEntry.get(msg_id="u61")
    assert BOT_USERNAME not in entry.text
    account = await ChannelAccount.get(external_id="1061")
    assert account.chat_id != "-100777"  # the group is not the member's own chat


async def test_group_reply_to_bot_is_answered(tg: TG) -> None:
    reply_to = bot_message(8000, -100777, "之前的回答", chat_type="supergroup")
    await tg.send(message_update(62, 1062, "怎么充值话费", chat_id=-100777, chat_type="supergroup", reply_to=reply_to))
    assert len(tg.fake.sent(chat_id=-100777)) == 1


async def test_group_command_for_another_bot_is_ignored(tg: TG) -> None:
    await tg.send(message_update(63, 1063, "/help@other_bot", chat_id=-100777, chat_type="supergroup"))
    assert tg.fake.sent() == []


async def test_private_command_in_group_moves_to_private_chat(tg: TG) -> None:
    await tg.send(message_update(64, 1064, f"/points@{BOT_USERNAME}", chat_id=-100777, chat_type="supergroup"))
    private = tg.fake.sent(chat_id=1064)
    group = tg.fake.sent(chat_id=-100777)
    assert len(private) == 1
    assert len(group) == 1 and "私聊" in group[0].text
    assert group[0].buttons()[0]["url"] == f"https://t.me/{BOT_USERNAME}"


async def test_private_command_in_group_when_private_chat_impossible(tg: TG) -> None:
    tg.fake.fail("sendMessage", 1065, 403, "Forbidden: bot can't initiate conversation with a user", times=-1)
    await tg.send(message_update(65, 1065, f"/points@{BOT_USERNAME}", chat_id=-100777, chat_type="supergroup"))
    [note] = tg.fake.sent(chat_id=-100777)
    assert "先" in note.text or "请" in note.text


async def test_non_text_private_message_gets_a_polite_note(tg: TG) -> None:
    sticker = {
        "sticker": {
            "file_id": "x",
            "file_unique_id": "y",
            "type": "regular",
            "width": 512,
            "height": 512,
            "is_animated": False,
            "is_video": False,
        }
    }
    await tg.send(message_update(70, 1070, None, extra=sticker))
    [call] = tg.fake.sent(chat_id=1070)
    assert "文字" in call.text


async def test_member_text_is_escaped(tg: TG) -> None:
    await tg.send(message_update(80, 1080, "<b>火星</b> & <script>"))
    for call in tg.fake.sent(chat_id=1080):
        assert "<b>" not in call.text and "<script>" not in call.text


async def test_blocked_member_reply_goes_to_outbox_and_marks_unreachable(tg: TG) -> None:
    tg.fake.block(1090)
    await tg.send(message_update(90, 1090, "怎么充值话费"))
    worker = tg.client.app[OUTBOX_WORKER]
    deadline = asyncio.get_running_loop().time() + 10.0
    while asyncio.get_running_loop().time() < deadline:
        row = await OutboxMessage.get_or_none(address="1090")
        if row and row.status == "dead":
            break
        await asyncio.sleep(0.02)
    await worker.wait_idle()
    row = await OutboxMessage.get(address="1090")
    assert row.status == "dead"
    account = await ChannelAccount.get(external_id="1090")
    assert account.active is False


async def test_rate_limited_reply_is_retried_after_retry_after(tg: TG) -> None:
    tg.fake.rate_limit(1095, retry_after=1, times=1)
    await tg.send(message_update(95, 1095, "怎么充值话费"))
    deadline = asyncio.get_running_loop().time() + 10.0  # the retry comes after 1 s
    while not tg.fake.sent(chat_id=1095) and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    calls = [c for c in tg.fake.calls if c.method == "sendMessage" and c.chat_id == "1095"]
    assert [c.status for c in calls] == [429, 200]
    assert calls[1].at - calls[0].at >= 0.95  # waited retry_after
    assert "#" not in calls[1].text[:1]


async def test_startup_publishes_command_menu_per_language(tg: TG) -> None:
    deadline = asyncio.get_running_loop().time() + 10.0
    while len(tg.fake.sent("setMyCommands")) < 3 and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    menus = {c.params.get("language_code", ""): json.loads(c.params["commands"]) for c in tg.fake.sent("setMyCommands")}
    assert set(menus) == {"", "zh", "en"}
    names = [c["command"] for c in menus["en"]]
    assert names == ["start", "help", "ask", "points", "top", "badges", "redeem", "human", "lang", "stop"]
    assert menus["en"][1]["description"] == "What I can do"
    assert menus["zh"][1]["description"] != "What I can do"
    assert tg.fake.sent("getMe")


async def test_token_empty_mounts_nothing(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, telegram_token=""), db_setup="schema")
    async with TestClient(TestServer(app)) as c:
        resp = await c.post(
            "/telegram/webhook", json=message_update(1, 1, "hi"), headers={"X-Telegram-Bot-Api-Secret-Token": "x"}
        )
        assert resp.status in (404, 405)
        assert app.get(TELEGRAM) is None
        assert "telegram" not in c.app[SERVICES].channels.names()


async def test_no_secret_configured_refuses_updates(tmp_path: Path, fake_tg: FakeTelegram) -> None:  # noqa: F811
    app = create_app(fast_settings(tmp_path, fake_tg, telegram_webhook_secret=""), db_setup="schema")
    async with TestClient(TestServer(app)) as c:
        resp = await c.post(
            "/telegram/webhook", json=message_update(1, 1, "hi"), headers={"X-Telegram-Bot-Api-Secret-Token": ""}
        )
        assert resp.status == 503
        assert await TranscriptEntry.all().count() == 0


async def test_oversize_body_is_413_and_not_processed(tg: TG) -> None:
    update = message_update(99, 1099, "流量" * 40_000)
    assert await tg.post(update) == 413
    await tg.settle()
    assert await TranscriptEntry.all().count() == 0


async def test_update_that_cannot_be_recorded_is_500_then_the_retry_is_answered_once(tg: TG) -> None:
    """A database failure must not lose the update: Telegram gets 500 and delivers it again."""
    from tortoise import connections

    conn = connections.get("default")
    await conn.execute_script('ALTER TABLE "transcript_entry" RENAME TO "transcript_entry_away"')
    update = message_update(77, 1077, "怎么充值话费")
    try:
        assert await tg.post(update) == 500
        await tg.settle()
        assert tg.fake.sent(chat_id=1077) == []
    finally:
        await conn.execute_script('ALTER TABLE "transcript_entry_away" RENAME TO "transcript_entry"')
    assert await tg.post(update) == 200  # Telegram's redelivery
    await tg.settle()
    assert await tg.post(update) == 200  # and one more, after it was answered
    await tg.settle()
    assert len(tg.fake.sent(chat_id=1077)) == 1
    assert await TranscriptEntry.filter(msg_id="u77", direction="in").count() == 1


def test_aiogram_is_imported_only_for_a_configured_bot() -> None:
    """aiogram's ~3 s import is paid only by a service that has a Telegram token."""
    import subprocess
    import sys

    from bot.core.settings import ROOT

    probe = (
        "import sys; from bot.app import create_app; from bot.core.settings import Settings; "
        "create_app(Settings(_env_file=None, telegram_token=sys.argv[1])); print('aiogram' in sys.modules)"
    )
    seen = [
        subprocess.run(
            [sys.executable, "-c", probe, token], cwd=ROOT, capture_output=True, text=True, timeout=120
        ).stdout.strip()
        for token in ("", "123456:" + "A" * 35)
    ]
    assert seen == ["False", "True"]


async def test_answer_is_stored_before_the_200_and_sent_by_the_outbox_if_the_worker_dies(
    tmp_path: Path,
    fake_tg: FakeTelegram,
    monkeypatch,  # noqa: F811
) -> None:
    """The worker that computed the answer dies right after the 200 (its inline send never
    happens): the stored row is sent by the outbox after the grace, once; a redelivery of
    the update does not add a second one."""
    settings = fast_settings(tmp_path, fake_tg, telegram_inline_grace_seconds=0.5)
    app = create_app(settings, db_setup="schema")
    async with TestClient(TestServer(app)) as c:
        await load_sample_kb(app)
        tg = TG(c, fake_tg)
        channel = app[TELEGRAM]

        async def killed(*args, **kwargs) -> bool:  # type: ignore[no-untyped-def]
            return True  # the process is gone before it sends anything

        monkeypatch.setattr(channel, "_send_rows", killed)
        update = message_update(90, 1090, "怎么充值话费")
        assert await tg.post(update) == 200
        [row] = await OutboxMessage.filter(idempotency_key="telegram:u90:0")
        assert row.status == "queued" and fake_tg.sent(chat_id=1090) == []  # durable, not sent yet
        for _ in range(100):
            if fake_tg.sent(chat_id=1090):
                break
            await asyncio.sleep(0.05)
        monkeypatch.undo()
        assert await tg.post(update) == 200  # Telegram redelivers (it never saw our 200, say)
        await tg.settle()
        await asyncio.sleep(0.3)
        assert len(fake_tg.sent(chat_id=1090)) == 1
        assert (await OutboxMessage.get(id=row.id)).status == "sent"
        assert await TranscriptEntry.filter(msg_id="u90").count() == 1
