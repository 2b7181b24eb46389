"""Offer eligibility: every exclusion rule on its own, ranking, quiet hours, templates."""

from __future__ import annotations

from datetime import datetime, time, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given
from hypothesis import strategies as st

from bot.core.messages import Reply
from community.offers.engine import (
    OfferContext,
    OfferHistory,
    Rules,
    choose,
    evaluate,
    parse_quiet_hours,
    tag_matches,
)
from community.offers.models import Offer
from community.offers.render import attach_offer, check_template, member_fields, render_body

TZ = ZoneInfo("Asia/Shanghai")
# 14:00 in Shanghai: outside the default quiet hours
NOON = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)
RULES = Rules(tz=TZ, quiet_hours=(time(22), time(8)), max_per_member_per_day=1)


def offer(**kw: object) -> Offer:
    values: dict[str, object] = dict(
        id=1,
        title="流量叠加包",
        body="",
        url="https://shop.example/addon",
        action_label="",
        trigger_items=[],
        trigger_categories=["data"],
        trigger_keywords=[],
        trigger_tags=[],
        channels=[],
        locales=[],
        starts_at=None,
        ends_at=None,
        daily_budget=0,
        repeat_days=7,
        priority=0,
        active=True,
    )
    values.update(kw)
    return Offer(**values)


def context(**kw: object) -> OfferContext:
    values: dict[str, object] = dict(
        member_id=7,
        opted_out=False,
        tags=("plan:5g-128", "tenure:5y"),
        channel="web",
        locale="zh_CN",
        question="我的流量还剩多少",
        item_id=11,
        category="data",
        now=NOON,
        blocked_by=None,
    )
    values.update(kw)
    return OfferContext(**values)  # type: ignore[arg-type]


def codes(
    o: Offer, ctx: OfferContext | None = None, history: OfferHistory | None = None, rules: Rules = RULES
) -> set[str]:
    return {r.code for r in evaluate(o, ctx or context(), history or OfferHistory(), rules).reasons}


def test_matching_offer_is_eligible() -> None:
    v = evaluate(offer(), context(), OfferHistory(), RULES)
    assert v.eligible and v.score == 3


@pytest.mark.parametrize(
    ("ctx_kw", "offer_kw", "history", "code"),
    [
        ({"opted_out": True}, {}, None, "opted_out"),
        ({"blocked_by": "complaint"}, {}, None, "complaint"),
        ({"blocked_by": "agent"}, {}, None, "agent"),
        ({"now": datetime(2026, 11, 26, 15, 0, tzinfo=timezone.utc)}, {}, None, "quiet_hours"),  # 23:00 local
        ({}, {}, OfferHistory(member_offers_today=1), "member_daily_cap"),
        ({}, {"active": False}, None, "inactive"),
        ({}, {"starts_at": NOON + timedelta(hours=1)}, None, "not_started"),
        ({}, {"ends_at": NOON}, None, "ended"),
        ({"channel": "sms"}, {"channels": ["wechat", "telegram"]}, None, "channel"),
        ({"locale": "en"}, {"locales": ["zh_CN"]}, None, "locale"),
        ({"category": "billing", "item_id": 99}, {}, None, "no_trigger"),
        ({}, {"trigger_tags": ["vip"]}, None, "tags"),
        ({}, {"daily_budget": 100}, OfferHistory(impressions_today={1: 100}), "budget"),
        ({}, {}, OfferHistory(last_shown={1: NOON - timedelta(days=6)}), "repeat"),
    ],
)
def test_each_exclusion_rule(ctx_kw: dict, offer_kw: dict, history: OfferHistory | None, code: str) -> None:
    found = codes(offer(**offer_kw), context(**ctx_kw), history)
    assert found == {code}


def test_edges_of_caps_and_schedule_are_exact() -> None:
    # one below the budget, exactly a week later, starting now: all allowed
    assert codes(offer(daily_budget=100), history=OfferHistory(impressions_today={1: 99})) == set()
    assert codes(offer(), history=OfferHistory(last_shown={1: NOON - timedelta(days=7)})) == set()
    assert codes(offer(starts_at=NOON, ends_at=NOON + timedelta(seconds=1))) == set()
    # repeat_days=0 means no per-offer repeat limit
    assert codes(offer(repeat_days=0), history=OfferHistory(last_shown={1: NOON})) == set()
    # another offer seen today does not count against this offer's repeat limit
    assert codes(offer(), history=OfferHistory(last_shown={2: NOON})) == set()
    rules = Rules(tz=TZ, quiet_hours=None, max_per_member_per_day=2)
    assert codes(offer(), history=OfferHistory(member_offers_today=1), rules=rules) == set()


def test_triggers_keywords_items_and_tag_patterns() -> None:
    kw = offer(trigger_categories=[], trigger_keywords=["流量"])
    assert codes(kw, context(category="", item_id=None)) == set()
    assert codes(kw, context(question="怎么交话费", category="", item_id=None)) == {"no_trigger"}
    # keywords are matched on normalised text: full-width / case / traditional script
    assert codes(offer(trigger_categories=[], trigger_keywords=["5G"]), context(question="５ｇ套餐")) == set()
    assert codes(offer(trigger_categories=[], trigger_items=[11]), context(category="")) == set()
    assert codes(offer(trigger_tags=["plan:*"])) == set()
    assert codes(offer(trigger_tags=["plan:4g*"])) == {"tags"}
    # no context triggers at all: any answer matches
    assert codes(offer(trigger_categories=[]), context(category="", item_id=None)) == set()
    assert tag_matches("VIP", ["vip"]) and not tag_matches("vip", [])


def test_choose_prefers_priority_then_specificity_then_oldest() -> None:
    ctx = context()
    a = evaluate(offer(id=1, trigger_categories=["data"]), ctx, OfferHistory(), RULES)
    b = evaluate(offer(id=2, trigger_categories=["data"], trigger_items=[11]), ctx, OfferHistory(), RULES)
    c = evaluate(offer(id=3, trigger_categories=["data"], priority=5), ctx, OfferHistory(), RULES)
    d = evaluate(offer(id=4, trigger_categories=["data"], priority=9, active=False), ctx, OfferHistory(), RULES)
    assert choose([a, b]).offer.id == 2  # type: ignore[union-attr]
    assert choose([a, b, c, d]).offer.id == 3  # type: ignore[union-attr]
    e = evaluate(offer(id=5, trigger_categories=["data"]), ctx, OfferHistory(), RULES)
    assert choose([e, a]).offer.id == 1  # type: ignore[union-attr]
    assert choose([d]) is None and choose([]) is None


def test_quiet_hours_parsing_and_spans() -> None:
    assert parse_quiet_hours("") is None and parse_quiet_hours("08:00-08:00") is None
    assert parse_quiet_hours("22:00-08:00") == (time(22), time(8))
    with pytest.raises(ValueError):
        parse_quiet_hours("late evening")
    day = Rules(tz=TZ, quiet_hours=(time(12), time(13)), max_per_member_per_day=1)
    assert day.in_quiet_hours(datetime(2026, 1, 1, 4, 30, tzinfo=timezone.utc))  # 12:30 local
    assert not day.in_quiet_hours(datetime(2026, 1, 1, 5, 0, tzinfo=timezone.utc))  # 13:00 local: over
    assert RULES.in_quiet_hours(datetime(2026, 1, 1, 23, 59, tzinfo=timezone.utc))  # 07:59 local
    assert not RULES.in_quiet_hours(datetime(2026, 1, 1, 0, 0, tzinfo=timezone.utc))  # 08:00 local


@given(
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2100, 1, 1), timezones=st.just(timezone.utc)),
    st.integers(0, 23),
    st.integers(0, 23),
)
def test_quiet_hours_property(now: datetime, a: int, b: int) -> None:
    """Inside the span iff the local hour is in [a, b) (wrapping midnight)."""
    rules = Rules(tz=TZ, quiet_hours=parse_quiet_hours(f"{a:02d}:00-{b:02d}:00"), max_per_member_per_day=1)
    hour = now.astimezone(TZ).hour
    expected = a != b and ((a <= hour < b) if a < b else (hour >= a or hour < b))
    assert rules.in_quiet_hours(now) == expected
    start = rules.day_start(now)
    assert start <= now < start + timedelta(hours=25) and start.astimezone(TZ).hour == 0


@given(st.booleans(), st.sampled_from([None, "complaint", "agent"]), st.integers(0, 3))
def test_member_exclusions_block_every_offer(opted_out: bool, blocked: str | None, seen: int) -> None:
    ctx = context(opted_out=opted_out, blocked_by=blocked)
    v = evaluate(offer(), ctx, OfferHistory(member_offers_today=seen), RULES)
    assert v.eligible == (not opted_out and blocked is None and seen < 1)


def test_body_template_is_sandboxed_and_plain_text() -> None:
    fields = member_fields(name="<b>小王</b>", locale="zh_CN", channel="web", tags=["plan:5g-128", "vip"])
    assert fields["plan"] == "5g-128"
    o = offer(body="{{ member.name }}，您的 {{ member.plan }} 套餐可加购 <em>10GB</em>")
    assert render_body(o, fields) == "<b>小王</b>，您的 5g-128 套餐可加购 10GB"
    evil = offer(body="{{ ''.__class__.__mro__[1].__subclasses__() }}")
    assert render_body(evil, fields) == ""
    assert check_template(evil.body) is not None
    assert check_template("{{ member.name ") is not None and check_template("你好 {{ member.name }}") is None
    long = offer(body="流" * 500)
    assert len(render_body(long, fields)) == 160


def test_attach_offer_adds_card_and_action_button() -> None:
    reply = Reply(text="answer", kind="answer", item_id=11)
    attach_offer(reply, offer(action_label="开通流量叠加包"), "tok123456", "十元十个G", "https://csr.example/")
    assert reply.cards[0].url == "https://csr.example/o/tok123456" and reply.cards[0].description == "十元十个G"
    assert reply.choices[-1].action == "offer:tok123456" and reply.choices[-1].label == "开通流量叠加包"
    bare = Reply(text="answer")
    attach_offer(bare, offer(url="", action_label="办理"), "tok", "", "http://x")
    assert bare.cards[0].url == "" and bare.choices[0].action == "offer:tok"
