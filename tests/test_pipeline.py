"""The pipeline and router without a wire: dedup, state, numbered choices, rendering."""

from __future__ import annotations

import asyncio
import time

from hypothesis import given, strategies as st

from bot.core.i18n import Translator, normalize_locale
from bot.core.messages import Card, Choice, Incoming, Reply, replies_from_json, replies_to_json
from bot.core.models import AnswerFeedback, ChannelAccount, Member
from bot.core.i18n import detect_locale
from bot.core.render import numbered_text
from bot.core.stores import MemoryRateLimiter, MemoryStateStore


async def test_numbered_reply_maps_back_to_the_choice(services) -> None:
    pipe = services.pipeline
    first = await pipe.process(
        Incoming(channel="sms", user="+8613800000001", text="我的流量还剩多少，怎么查？", msg_id="s1")
    )
    assert first[0].kind == "answer" and first[0].choices[0].action.startswith("fb:up:")
    picked = await pipe.process(Incoming(channel="sms", user="+8613800000001", text="1", msg_id="s2"))
    assert picked[0].kind == "feedback"
    assert await AnswerFeedback.filter(helpful=True, item_id=first[0].item_id).count() == 1


async def test_digit_without_pending_choices_is_a_question(services) -> None:
    replies = await services.pipeline.process(Incoming(channel="web", user="w-digit", text="7"))
    assert replies[0].kind in ("none", "suggest", "answer")


async def test_concurrent_first_contact_creates_one_member(services) -> None:
    await asyncio.gather(
        *[
            services.pipeline.process(Incoming(channel="web", user="same-person", text=f"你好 {i}", msg_id=f"c{i}"))
            for i in range(8)
        ]
    )
    assert await ChannelAccount.filter(channel="web", external_id="same-person").count() == 1
    assert await Member.all().count() == 1


async def test_language_command_switches_locale(services) -> None:
    pipe = services.pipeline
    await pipe.process(Incoming(channel="web", user="lang-user", action="lang:en"))
    member = (await ChannelAccount.get(external_id="lang-user").select_related("member")).member
    assert member.locale == "en" and member.locale_explicit
    replies = await pipe.process(Incoming(channel="web", user="lang-user", text="帮助"))
    assert "Type your question" in replies[0].text


async def test_handler_error_is_polite_and_logged(services, monkeypatch) -> None:
    async def boom(ctx):  # type: ignore[no-untyped-def]
        raise RuntimeError("kaput")

    monkeypatch.setattr(services.pipeline.router, "_route", boom)
    replies = await services.pipeline.process(Incoming(channel="web", user="err", text="hi"))
    assert replies[0].kind == "error" and "kaput" not in replies[0].text


async def test_state_store_round_trip() -> None:
    store = MemoryStateStore()
    assert await store.get("m") == {}
    await store.set("m", {"choices": ["a"], "n": 1}, 60)
    assert await store.get("m") == {"choices": ["a"], "n": 1}
    await store.delete("m")
    assert await store.get("m") == {}


async def test_rate_limiter_spaces_reservations() -> None:
    limiter = MemoryRateLimiter()
    delays, times = [], []
    for _ in range(5):
        times.append(time.monotonic())
        delays.append(await limiter.reserve("x", 10.0, 1))
    times.append(time.monotonic())
    assert delays[0] == 0.0
    # consecutive slots are 0.1 s apart; the later reservation was made up to ``took`` s
    # later (measured: the process can be preempted between two calls on a busy machine)
    for k in range(1, 5):
        took = times[k + 1] - times[k - 1]
        assert 0.1 - took - 0.001 <= delays[k] - delays[k - 1] <= 0.1 + 0.001, (k, delays, took)


def test_numbered_text_renders_choices_and_cards() -> None:
    _ = Translator().bind("zh_CN")
    reply = Reply(
        text="答案",
        choices=[Choice("有帮助", "fb:up:1"), Choice("没帮助", "fb:down:1")],
        cards=[Card(title="流量包", url="https://e.example/o/1")],
    )
    text = numbered_text(reply, _)
    assert "回复 1：有帮助" in text and "回复 2：没帮助" in text and "https://e.example/o/1" in text


@given(
    st.lists(
        st.builds(
            Reply,
            text=st.text(),
            choices=st.lists(st.builds(Choice, st.text(), st.text()), max_size=3),
            cards=st.lists(st.builds(Card, st.text(), st.text(), st.text(), st.text()), max_size=2),
            kind=st.sampled_from(["answer", "none"]),
            item_id=st.none() | st.integers(1, 10**6),
            confidence=st.none() | st.floats(0, 1),
        ),
        max_size=3,
    )
)
def test_replies_json_round_trip(replies: list[Reply]) -> None:
    assert replies_from_json(replies_to_json(replies)) == replies


@given(st.text(max_size=40))
def test_locale_helpers_never_raise(text: str) -> None:
    assert normalize_locale(text) in (None, "zh_CN", "zh_TW", "en")
    assert detect_locale(text, "zh_CN") in ("zh_CN", "zh_TW", "en")


def test_locale_hints() -> None:
    assert normalize_locale("zh-hans") == "zh_CN"
    assert normalize_locale("zh-Hant-TW") == "zh_TW"
    assert normalize_locale("en-US") == "en"
    assert detect_locale("how do I top up", "zh_CN") == "en"
    assert detect_locale("CXLL", "zh_CN") == "zh_CN"
    assert detect_locale("請問怎麼查詢話費", "zh_CN") == "zh_TW"
