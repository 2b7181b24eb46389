"""Update -> Incoming through the aiogram Dispatcher, and the command mapping."""

from __future__ import annotations

from typing import Any

import pytest
from aiogram import Bot
from aiogram.dispatcher.event.bases import UNHANDLED
from aiogram.types import User
from hypothesis import given
from hypothesis import strategies as st

from bot.channels.telegram.commands import MENU, command_text, menu_for, parse_command
from bot.channels.telegram.updates import Unsupported, build_dispatcher, parse_update
from bot.core.i18n import get_translator
from bot.core.messages import Incoming
from tests.fakes.telegram_api import (
    BOT_ID,
    BOT_USERNAME,
    bot_message,
    callback_update,
    member_update,
    message_update,
)

ME = User(id=BOT_ID, is_bot=True, first_name="EveryCSR", username=BOT_USERNAME)


@pytest.fixture
def bot() -> Bot:
    return Bot("123:ABC")


async def feed(bot: Bot, raw: dict[str, Any]) -> Any:
    dp = build_dispatcher()
    result = await dp.feed_update(bot, parse_update(raw, bot), me=ME)
    return None if result is UNHANDLED else result


async def test_private_message(bot: Bot) -> None:
    inc = await feed(bot, message_update(7, 42, " 查话费 ", lang="zh-hant"))
    assert isinstance(inc, Incoming)
    assert (inc.channel, inc.user, inc.chat, inc.text, inc.msg_id) == ("telegram", "42", "42", "查话费", "u7")
    assert inc.locale_hint == "zh_TW"
    assert inc.display_name == "小明"


@pytest.mark.parametrize(
    ("code", "hint"),
    [
        ("zh-hans", "zh_CN"),
        ("zh-hant", "zh_TW"),
        ("en", "en"),
        ("en-GB", "en"),
        ("zh", "zh_CN"),
        ("ru", None),
        (None, None),
    ],
)
async def test_language_code_to_locale_hint(bot: Bot, code: str | None, hint: str | None) -> None:
    inc = await feed(bot, message_update(1, 42, "hi", lang=code))
    assert inc.locale_hint == hint


async def test_start_payloads(bot: Bot) -> None:
    inc = await feed(bot, message_update(1, 42, "/start fw_x"))
    assert (inc.event, inc.payload, inc.text) == ("start", "fw_x", None)
    inc = await feed(bot, message_update(2, 42, "/start"))
    assert (inc.event, inc.payload) == ("start", None)
    inc = await feed(bot, message_update(3, 42, f"/start@{BOT_USERNAME} q_17"))
    assert (inc.event, inc.payload) == ("start", "q_17")


async def test_commands_map_to_router_text(bot: Bot) -> None:
    assert (await feed(bot, message_update(1, 42, "/points"))).text == "points"
    assert (await feed(bot, message_update(2, 42, f"/Lang@{BOT_USERNAME} en"))).text == "lang en"
    assert (await feed(bot, message_update(3, 42, "/ask 怎么充值话费"))).text == "怎么充值话费"
    assert await feed(bot, message_update(4, 42, "/help@someone_else_bot")) is None


async def test_group_messages_need_mention_or_reply(bot: Bot) -> None:
    group = dict(chat_id=-1001, chat_type="supergroup")
    assert await feed(bot, message_update(1, 42, "查话费", **group)) is None
    inc = await feed(bot, message_update(2, 42, f"@{BOT_USERNAME} 查话费", **group))
    assert inc.text == "查话费" and inc.chat == "-1001" and inc.meta["group"] is True
    inc = await feed(
        bot, message_update(3, 42, "查话费", reply_to=bot_message(5, -1001, chat_type="supergroup"), **group)
    )
    assert inc.text == "查话费"
    other = {**bot_message(5, -1001, chat_type="supergroup"), "from": {"id": 9, "is_bot": False, "first_name": "x"}}
    assert await feed(bot, message_update(4, 42, "查话费", reply_to=other, **group)) is None
    assert await feed(bot, message_update(5, 42, "@someone_else 查话费", **group)) is None


async def test_group_mention_after_emoji_uses_utf16_offsets(bot: Bot) -> None:
    inc = await feed(bot, message_update(1, 42, f"😀😀 @{BOT_USERNAME} 查流量", chat_id=-5, chat_type="group"))
    assert inc is not None and inc.text == "😀😀 查流量"


async def test_private_command_in_group_is_addressed_privately(bot: Bot) -> None:
    inc = await feed(bot, message_update(1, 42, f"/redeem@{BOT_USERNAME}", chat_id=-1001, chat_type="supergroup"))
    assert inc.chat == "42" and inc.meta["moved_from_group"] == "-1001" and "group" not in inc.meta
    inc = await feed(bot, message_update(2, 42, f"/top@{BOT_USERNAME}", chat_id=-1001, chat_type="supergroup"))
    assert inc.chat == "-1001"


async def test_edited_message(bot: Bot) -> None:
    inc = await feed(bot, message_update(9, 42, "新问题", edited=True))
    assert inc.text == "新问题" and inc.meta["edited"] is True and inc.msg_id == "u9"


async def test_callback_query(bot: Bot) -> None:
    inc = await feed(bot, callback_update(11, 42, "fb:up:3", message_id=77))
    assert inc.action == "fb:up:3" and inc.meta["callback_id"] == "cb11" and inc.meta["message_id"] == 77
    assert inc.msg_id == "u11" and inc.meta["editable"] is True
    inc = await feed(bot, callback_update(12, 42, "#2"))
    assert inc.action is None and inc.text == "3"  # third pending choice


async def test_my_chat_member(bot: Bot) -> None:
    inc = await feed(bot, member_update(5, 42))
    assert (inc.event, inc.user, inc.msg_id) == ("unsubscribe", "42", "u5")
    assert await feed(bot, member_update(6, 42, old="kicked", new="member")) is None


async def test_non_text_private_message_is_unsupported(bot: Bot) -> None:
    photo = {"photo": [{"file_id": "a", "file_unique_id": "b", "width": 1, "height": 1}]}
    res = await feed(bot, message_update(5, 42, None, extra=photo))
    assert isinstance(res, Unsupported) and res.chat_id == "42"
    res = await feed(bot, message_update(6, 42, None, chat_id=-3, chat_type="group", extra=photo))
    assert res is None
    captioned = await feed(bot, message_update(7, 42, None, extra={**photo, "caption": "这是什么套餐"}))
    assert captioned.text == "这是什么套餐"


async def test_messages_from_bots_are_ignored(bot: Bot) -> None:
    raw = message_update(5, 42, "hi")
    raw["message"]["from"]["is_bot"] = True
    assert await feed(bot, raw) is None


@pytest.mark.parametrize("raw", [[], "x", {"update_id": "x"}, {"update_id": 1, "message": {"text": "no chat"}}])
def test_parse_update_rejects_malformed(raw: Any) -> None:
    with pytest.raises((TypeError, ValueError)):
        parse_update(raw)


@given(
    name=st.from_regex(r"[A-Za-z0-9_]{1,32}", fullmatch=True),
    bot_name=st.none() | st.from_regex(r"[A-Za-z0-9_]{1,20}", fullmatch=True),
    args=st.text(max_size=50),
)
def test_parse_command_roundtrip(name: str, bot_name: str | None, args: str) -> None:
    text = f"/{name}" + (f"@{bot_name}" if bot_name else "") + (f" {args}" if args else "")
    cmd = parse_command(text)
    assert cmd is not None
    assert cmd.name == name.lower() and cmd.addressed_to == bot_name and cmd.args == args.strip()


@given(st.text(max_size=40))
def test_parse_command_only_for_slash_commands(text: str) -> None:
    cmd = parse_command(text)
    if cmd is not None:
        assert text.startswith("/")
        assert command_text(cmd).strip() == command_text(cmd)


def test_menu_is_translated_and_valid() -> None:
    tr = get_translator()
    for locale in ("zh_CN", "zh_TW", "en"):
        menu = menu_for(locale, tr)
        assert [c.command for c in menu] == [c.name for c in MENU]
        assert all(1 <= len(c.description) <= 256 for c in menu)
    assert menu_for("zh_CN", tr)[0].description != menu_for("en", tr)[0].description


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=10),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=12,
)
update_like = st.fixed_dictionaries(
    {"update_id": st.integers() | st.text(max_size=3)},
    optional={k: json_values for k in ("message", "edited_message", "callback_query", "my_chat_member")},
)


@given(raw=json_values | update_like)
def test_parse_update_never_raises_anything_but_a_400_error(raw: Any) -> None:
    # the webhook answers 400 for exactly these; anything else would be a 500
    try:
        parse_update(raw)
    except (TypeError, ValueError):
        pass
