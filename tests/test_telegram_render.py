"""Rendering a Reply for Telegram: escaping, the 4096 split, keyboards."""

from __future__ import annotations

import html
import re

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.channels.telegram.render import MAX_MESSAGE, callback_data, render, split_text, utf16_len
from bot.core.messages import Card, Choice, Reply

_WS = re.compile(r"\s+")


def _squash(s: str) -> str:
    return _WS.sub("", s)


text_st = st.text(
    alphabet=st.sampled_from(list("ab流量。. \n!？😀<&>")) | st.characters(blacklist_categories=("Cs",)),
    max_size=3000,
)


@settings(max_examples=200, deadline=None)
@given(text=text_st, limit=st.integers(min_value=2, max_value=300))
def test_split_keeps_every_character_and_respects_limit(text: str, limit: int) -> None:
    parts = split_text(text, limit)
    assert all(p and utf16_len(p) <= limit for p in parts)
    assert _squash("".join(parts)) == _squash(text)


@settings(max_examples=100, deadline=None)
@given(text=text_st)
def test_short_text_is_one_part(text: str) -> None:
    if text.strip() and utf16_len(text.strip()) <= MAX_MESSAGE:
        assert split_text(text) == [text.strip()]


def test_long_answer_splits_on_paragraph_boundaries() -> None:
    paragraphs = [f"第{i}段。" + "流量查询说明" * 150 for i in range(8)]  # ~900 chars each
    parts = split_text("\n\n".join(paragraphs))
    assert len(parts) >= 2
    assert all(utf16_len(p) <= 4096 for p in parts)
    for p in parts:  # every part starts at a paragraph start and ends at a paragraph end
        assert p.startswith("第") and p.endswith("说明")


def test_astral_characters_count_as_two_units() -> None:
    parts = split_text("😀" * 3000)
    assert [utf16_len(p) for p in parts] == [4096, 1904]


@settings(max_examples=200, deadline=None)
@given(text=st.text(max_size=500))
def test_everything_is_escaped(text: str) -> None:
    for part in render(Reply(text=text)):
        assert "<" not in part.html and ">" not in part.html
        assert html.unescape(part.html) == part.text


def test_keyboard_on_last_part_with_choices_and_card_links() -> None:
    reply = Reply(
        text="x" * 5000,
        choices=[Choice("👍 有帮助", "fb:up:1"), Choice("转发给朋友", "fw:1")],
        cards=[Card("流量说明", url="https://example.com/a?b=<c>"), Card("无链接卡片", "描述")],
    )
    parts = render(reply)
    assert len(parts) == 2
    assert parts[0].markup is None and parts[-1].markup is not None
    rows = parts[-1].markup.inline_keyboard
    assert [b.callback_data for r in rows for b in r if b.callback_data] == ["fb:up:1", "fw:1"]
    assert [b.url for r in rows for b in r if b.url] == ["https://example.com/a?b=<c>"]
    assert "无链接卡片" in parts[-1].text and "描述" in parts[-1].text


def test_long_action_goes_as_pending_choice_index() -> None:
    assert callback_data("fb:up:1", 0) == "fb:up:1"
    assert callback_data("x" * 65, 2) == "#2"
    assert callback_data("流" * 22, 1) == "#1"  # 66 bytes in UTF-8
    assert callback_data("#raw", 0) == "#0"


def test_buttons_without_text_still_render() -> None:
    [part] = render(Reply(text="", choices=[Choice("是", "yes")]))
    assert part.text == "…" and part.markup is not None
    assert render(Reply(text="  ")) == []
