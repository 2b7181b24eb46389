"""One rule for the reply language: the member's choice, else the channel's hint, else the
language of their first contact. A single message in other words never flips it."""

from __future__ import annotations

import re

from hypothesis import given
from hypothesis import strategies as st

from bot.core.render import to_traditional
from tests.community_helpers import chat

CJK = re.compile(r"[\u3400-\u9fff]")


def texts(replies: list[dict]) -> str:
    return "\n".join([r["text"] for r in replies] + [c["label"] for r in replies for c in r["choices"]])


async def test_zh_member_typing_english_command_is_answered_in_chinese(client) -> None:
    await chat(client, "lang-zh", text="我的流量还剩多少")
    replies = await chat(client, "lang-zh", text="helper on")
    assert CJK.search(texts(replies)), texts(replies)
    replies = await chat(client, "lang-zh", text="badges please")
    assert CJK.search(texts(replies)), texts(replies)


async def test_english_page_gets_english_even_for_chinese_command(client) -> None:
    replies = await chat(client, "lang-en", text="人工", locale="en")
    body = texts(replies)
    assert body and not CJK.search(body), body


async def test_first_contact_without_hint_uses_its_own_language(client) -> None:
    replies = await chat(client, "lang-first-en", text="how do I check my data balance")
    assert not CJK.search(replies[0]["text"]) or replies[0]["kind"] == "answer"
    replies = await chat(client, "lang-first-en", text="帮助")
    assert not CJK.search(texts(replies)), texts(replies)


async def test_help_lists_every_command_in_the_members_script(client) -> None:
    body = texts(await chat(client, "help-cn", text="帮助"))
    for word in ("提问", "回答", "积分", "徽章", "排行", "人工", "兑换", "语言"):
        assert word in body, (word, body)
    assert "積分" not in body
    body = texts(await chat(client, "help-tw", text="幫助", locale="zh_TW"))
    for word in ("提問", "積分", "兌換", "語言"):
        assert word in body, (word, body)
    body = texts(await chat(client, "help-en", text="help", locale="en"))
    for word in ("ask", "answer", "points", "badges", "top", "human", "redeem"):
        assert f"\n{word} — " in body, (word, body)


async def test_explicit_choice_wins_over_the_page_hint(client) -> None:
    await chat(client, "lang-pick", action="lang:zh_TW", locale="en")
    replies = await chat(client, "lang-pick", text="help", locale="en")
    assert CJK.search(texts(replies)), texts(replies)


async def test_zh_tw_member_reads_zh_cn_knowledge_in_traditional(client) -> None:
    replies = await chat(client, "lang-tw", text="我的流量還剩多少，怎麼查？", locale="zh_TW")
    assert replies[0]["kind"] == "answer", replies
    assert "簡訊" in replies[0]["text"] and "短信" not in replies[0]["text"], replies[0]["text"]
    labels = [c["label"] for r in replies for c in r["choices"]]
    assert labels and all(label == to_traditional(label) for label in labels), labels


async def test_zh_cn_member_keeps_simplified(client) -> None:
    replies = await chat(client, "lang-cn", text="我的流量还剩多少，怎么查？")
    assert "短信" in replies[0]["text"], replies[0]["text"]


@given(st.text(alphabet=st.characters(exclude_categories=("Lo",)), max_size=60))
def test_conversion_leaves_text_without_chinese_alone(text: str) -> None:
    assert to_traditional(text) == text  # Latin, digits, punctuation, emoji: as written
