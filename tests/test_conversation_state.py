"""The typed conversation state: stored JSON in and out, old shapes, numbered choices."""

from __future__ import annotations

import json
from typing import Any

from hypothesis import given, strategies as st

from bot.core.messages import Card, Choice, Incoming, Reply
from bot.core.models import ChannelAccount
from bot.core.state import ConversationState, LinkConfirm, RepeatCounts, load_state, remember_choices_of
from bot.core.stores import MemoryStateStore, member_state_key

KNOWN = {
    "last_query",
    "last_unanswered",
    "offered",
    "await",
    "choices",
    "answer_q",
    "last_question",
    "kb_downvoted",
    "survey_ticket",
    "redeem_reward",
    "seen",
    "notices_seen",
    "link_confirm",
    "sms_more",
    "complaint",
    "agent_ticket",
    "ticket_id",
}

text = st.text(max_size=20)
ids = st.integers(min_value=-(2**53), max_value=2**53)
finite = st.floats(allow_nan=False, allow_infinity=False)
json_scalars = st.none() | st.booleans() | ids | finite | text
json_values = st.recursive(
    json_scalars, lambda inner: st.lists(inner, max_size=4) | st.dictionaries(text, inner, max_size=4), max_leaves=12
)

replies = st.builds(
    Reply,
    text=text,
    choices=st.lists(st.builds(Choice, label=text, action=text), max_size=3),
    cards=st.lists(st.builds(Card, title=text, description=text, url=text, image_url=text), max_size=2),
    kind=text,
    item_id=st.none() | ids,
    confidence=st.none() | finite,
)
states = st.builds(
    ConversationState,
    last_query=st.none() | text,
    last_unanswered=st.none() | text,
    offered=st.lists(ids, max_size=4),
    await_=st.none() | text,
    choices=st.lists(text, max_size=4),
    answer_q=st.none() | text,
    last_question=st.none() | text,
    kb_downvoted=st.none() | ids,
    survey_ticket=st.none() | ids,
    redeem_reward=st.none() | ids,
    seen=st.none() | st.builds(RepeatCounts, day=text, items=st.dictionaries(text, ids, max_size=3)),
    notices_seen=ids,
    link_confirm=st.none() | st.builds(LinkConfirm, other=ids, via=text, phone=text, until=finite),
    sms_more=st.none() | replies,
    complaint=st.booleans(),
    agent_ticket=st.none() | ids,
    ticket_id=st.none() | ids,
    extra=st.dictionaries(text.filter(lambda k: k not in KNOWN), json_values, max_size=3),
)


@given(states)
def test_generated_states_round_trip_through_stored_json(state: ConversationState) -> None:
    stored = json.loads(json.dumps(state.to_json()))  # what the store gives back
    assert ConversationState.from_json(stored) == state
    assert ConversationState.from_json(stored).to_json() == stored


@given(st.dictionaries(text, json_values, max_size=6) | json_values)
def test_any_stored_json_loads_and_keeps_its_unknown_keys(data: Any) -> None:
    state = ConversationState.from_json(data)
    out = json.loads(json.dumps(state.to_json()))
    assert ConversationState.from_json(out) == state  # loading what we wrote changes nothing more
    if isinstance(data, dict):
        assert {k: v for k, v in out.items() if k not in KNOWN} == {k: v for k, v in data.items() if k not in KNOWN}


@given(st.dictionaries(st.sampled_from(sorted(KNOWN)), json_values, max_size=8))
def test_malformed_known_keys_never_raise(data: dict[str, Any]) -> None:
    state = ConversationState.from_json(data)
    assert set(state.to_json()) <= KNOWN
    assert all(isinstance(a, str) for a in state.choices) and all(type(i) is int for i in state.offered)


def test_shapes_stored_by_earlier_versions() -> None:
    state = ConversationState.from_json(
        {
            "await": "redeem_phone",
            "redeem_reward": 7,
            "last_query": "流量",
            "offered": [3, 4],
            "seen": {"day": "2026-12-05", "items": {"3": 2}},
            "link_confirm": {"other": 9, "via": "phone", "phone": "+8613800000000", "until": 1.5e9},
            "sms_more": Reply(text="rest", choices=[Choice("满意", "fb:up:1")], item_id=3).to_dict(),
            "choices": ["fb:up:1", {"label": "Talk to a person", "action": "human"}],
            "agent_ticket": 12,
            "complaint": 1,
            "someone_elses": {"a": [1]},
        }
    )
    assert state.await_ == "redeem_phone" and state.redeem_reward == 7 and state.offered == [3, 4]
    assert state.seen == RepeatCounts(day="2026-12-05", items={"3": 2})
    assert state.link_confirm == LinkConfirm(other=9, via="phone", phone="+8613800000000", until=1.5e9)
    assert state.sms_more == Reply(text="rest", choices=[Choice("满意", "fb:up:1")], item_id=3)
    assert state.choices == ["fb:up:1", "human"]
    assert state.complaint is True and state.agent_ticket == 12
    assert state.to_json()["someone_elses"] == {"a": [1]}


def test_malformed_known_keys_count_as_missing_and_clearing_drops_them() -> None:
    state = ConversationState.from_json(
        {
            "survey_ticket": "12",
            "notices_seen": True,
            "choices": [1, "x"],
            "link_confirm": {"other": 3, "until": float("nan")},
            "await": None,
        }
    )
    assert state == ConversationState()
    assert state.to_json() == {}
    state = ConversationState.from_json({"await": "post", "last_query": "hi"})
    state.await_ = None
    assert state.to_json() == {"last_query": "hi"}


def test_pick_resolves_only_a_number_among_the_pending_choices() -> None:
    state = ConversationState()
    assert state.pick("1") is None
    state.remember_choices([Choice("Yes", "lnk:ok"), "lnk:no"])
    assert state.choices == ["lnk:ok", "lnk:no"]
    assert [state.pick(t) for t in ("1", " 2 ", "２", "0", "3", "-1", "1a", "", "²", "9" * 5000)] == [
        "lnk:ok",
        "lnk:no",
        "lnk:no",
        None,
        None,
        None,
        None,
        None,
        None,
        None,
    ]
    state.remember_choices(())
    assert state.pick("1") is None and "choices" not in state.to_json()


def test_count_answer_counts_per_day() -> None:
    state = ConversationState()
    assert [state.count_answer("d1", "5"), state.count_answer("d1", "5"), state.count_answer("d1", "6")] == [0, 1, 0]
    assert state.count_answer("d2", "5") == 0 and state.seen == RepeatCounts(day="d2", items={"5": 1})


async def test_remember_choices_of_keeps_the_rest_of_the_state() -> None:
    store = MemoryStateStore()
    await store.set("member:1", {"last_query": "流量", "later_version_key": 3}, 60)
    await remember_choices_of(store, "member:1", ["fwr:t:1", "fwr:t:0"], 60)
    assert await store.get("member:1") == {
        "last_query": "流量",
        "later_version_key": 3,
        "choices": ["fwr:t:1", "fwr:t:0"],
    }
    assert (await load_state(store, "member:1")).pick("2") == "fwr:t:0"


async def test_pipeline_picks_from_stored_state_and_writes_unknown_keys_back(services) -> None:
    pipe = services.pipeline
    await pipe.process(Incoming(channel="sms", user="+8613800000077", text="你好", msg_id="cs1"))
    account = await ChannelAccount.get(channel="sms", external_id="+8613800000077")
    key = member_state_key(account.member_id)
    stored = await services.state.get(key)
    stored.update({"choices": ["lang:en", "lang:zh_CN"], "later_version_key": {"kept": True}})
    await services.state.set(key, stored, 600)
    await pipe.process(Incoming(channel="sms", user="+8613800000077", text="1", msg_id="cs2"))
    await account.fetch_related("member")
    assert account.member.locale == "en" and account.member.locale_explicit
    after = await services.state.get(key)
    assert after["later_version_key"] == {"kept": True}
    assert after.get("choices") != ["lang:en", "lang:zh_CN"]  # the reply's own choices (or none) are pending now
