"""The event bus: subscribers run in order, one failing never stops the rest or the publisher,
and the assembly wires each cross-domain event to the subscriber that replaced its hook."""

from __future__ import annotations

import dataclasses
import logging

import pytest

from bot.core.events import (
    AnswerAccepted,
    Event,
    EventBus,
    FeedbackGiven,
    ItemPicked,
    TicketResolved,
)


async def test_subscribers_run_in_subscription_order_with_the_event() -> None:
    bus = EventBus()
    seen: list[tuple[str, int]] = []

    async def first(e: AnswerAccepted) -> None:
        seen.append(("first", e.answer_id))

    async def second(e: AnswerAccepted) -> None:
        seen.append(("second", e.answer_id))

    bus.subscribe(AnswerAccepted, first)
    bus.subscribe(AnswerAccepted, second)
    done = await bus.publish(AnswerAccepted(answer_id=7, answerer_id=2, asker_id=1, question_id=3))
    assert seen == [("first", 7), ("second", 7)]
    assert done == 2


async def test_only_the_published_type_runs() -> None:
    bus = EventBus()
    seen: list[Event] = []

    async def record(e: Event) -> None:
        seen.append(e)

    bus.subscribe(FeedbackGiven, record)
    assert await bus.publish(ItemPicked(member_id=1, item_id=2, query="q")) == 0
    assert seen == []


async def test_a_failing_subscriber_is_logged_and_the_next_still_runs(caplog: pytest.LogCaptureFixture) -> None:
    bus = EventBus()
    seen: list[str] = []

    async def broken(e: FeedbackGiven) -> None:
        raise RuntimeError("scoring is down")

    async def after(e: FeedbackGiven) -> None:
        seen.append("after")

    bus.subscribe(FeedbackGiven, broken)
    bus.subscribe(FeedbackGiven, after)
    with caplog.at_level(logging.ERROR, logger="bot.core.events"):
        done = await bus.publish(FeedbackGiven(member_id=1, item_id=2, helpful=True))  # does not raise
    assert seen == ["after"]
    assert done == 1
    assert "scoring is down" in caplog.text


def test_events_are_frozen_and_subscribe_refuses_a_non_event() -> None:
    e = TicketResolved(ticket_id=1, member_id=2, item_id=3, question="怎么查话费")
    with pytest.raises(dataclasses.FrozenInstanceError):
        e.item_id = 4  # type: ignore[misc]
    with pytest.raises(TypeError):
        EventBus().subscribe(dict, lambda e: None)  # type: ignore[arg-type]


def test_the_assembly_wires_each_hook_replacement() -> None:
    """subscribe_all subscribes learning and scoring where the old string hooks were, once."""
    from types import SimpleNamespace

    from bot import subscriptions
    from bot.core.i18n import get_translator
    from bot.core.settings import Settings

    services = SimpleNamespace(
        events=EventBus(), settings=Settings(), redis=None, translator=get_translator(), outbox=None
    )
    gam = subscriptions.build_gamification(services)  # type: ignore[arg-type]
    subscriptions.subscribe_all(services, gam)  # type: ignore[arg-type]
    wired = {(s.event_type.__name__, s.name) for s in services.events.subscriptions()}
    assert ("ItemPicked", "VariantLearning.on_item_picked") in wired
    assert ("TicketResolved", "VariantLearning.on_ticket_resolved") in wired
    assert ("FeedbackGiven", "Scoring.feedback_given") in wired
    assert ("AnswerAccepted", "Scoring.answer_accepted") in wired
    assert ("ContributionApproved", "Scoring.contribution_approved") in wired
    assert ("MemberWarned", "Scoring.member_warned") in wired
    with pytest.raises(RuntimeError):
        subscriptions.subscribe_all(services, gam)  # type: ignore[arg-type]
    assert gam.facts.__class__.__name__ == "CommunityFacts"  # community facts plugged in


async def test_a_thumbs_up_pays_the_streak_through_the_bus_and_a_failing_subscriber_loses_nothing(client) -> None:
    """👍 on the third helpful day in a row: the feedback handler publishes FeedbackGiven and
    gamification's subscriber pays the streak; a broken subscriber before it changes nothing
    for the member."""
    from datetime import datetime, timedelta, timezone

    from bot.core.app_keys import SERVICES
    from bot.core.models import AnswerFeedback, Member
    from gamification.models import LedgerEntry
    from tests.community_helpers import chat

    services = client.app[SERVICES]
    seen: list[FeedbackGiven] = []

    async def broken(e: FeedbackGiven) -> None:
        seen.append(e)
        raise RuntimeError("an unrelated subscriber failed")

    # put the broken one first: the bus must still reach gamification's subscriber after it
    services.events._subs[FeedbackGiven].insert(0, broken)
    replies = await chat(client, "streak", text="怎么查询剩余流量？")
    up = next(c["action"] for r in replies for c in r.get("choices", []) if c["action"].startswith("fb:up:"))
    member = await Member.get(accounts__external_id="streak")
    now = datetime.now(timezone.utc)
    for days_ago in (1, 2):  # helpful self-service on the two days before
        row = await AnswerFeedback.create(member_id=member.id, item_id=int(up.rsplit(":", 1)[1]), helpful=True)
        await AnswerFeedback.filter(id=row.id).update(created_at=now - timedelta(days=days_ago))

    thanks = await chat(client, "streak", action=up)
    assert thanks[0]["kind"] == "feedback"
    assert seen == [FeedbackGiven(member_id=member.id, item_id=int(up.rsplit(":", 1)[1]), helpful=True)]
    assert await LedgerEntry.filter(member_id=member.id, event="self_service_streak").count() == 1


async def test_gamification_learns_community_facts_through_the_assembly(sqlite_orm: None) -> None:
    """Forwarding points ask the facts port, which the assembly fills from moderation and the
    knowledge base: a frozen sharer earns nothing, an item's difficulty scales the points."""
    from datetime import datetime, timedelta, timezone

    from bot.core.models import Member
    from bot.subscriptions import CommunityFacts
    from community.models import KnowledgeItem
    from community.moderation.models import MemberStanding
    from gamification.models import ForwardLink, LedgerEntry
    from tests.gamification_helpers import standalone

    gam = standalone(facts=CommunityFacts())
    hard = await KnowledgeItem.create(
        key="hard", locale="zh_CN", title="携号转网", answer="…", difficulty=3, status="published"
    )
    assert await gam.facts.item_difficulty(hard.id) == 3
    assert await gam.facts.item_difficulty(999_999) == 1

    frozen, free = await Member.create(), await Member.create()
    await MemberStanding.create(
        member=frozen, warnings=3, forwarding_frozen=True, clean_until=datetime.now(timezone.utc) + timedelta(days=30)
    )
    assert await gam.facts.forwarding_frozen(frozen.id) and not await gam.facts.forwarding_frozen(free.id)

    held = await ForwardLink.create(token="frozen-link-01", sharer=frozen, item_id=hard.id, channel="web")
    outcome = await gam.on_forward_engaged(held, "d:someone", fingerprint="dev-a", network="net-a")
    assert (outcome.points, outcome.reason) == (0, "forwarding frozen")

    paid = await ForwardLink.create(token="free-link-0001", sharer=free, item_id=hard.id, channel="web")
    outcome = await gam.on_forward_engaged(paid, "d:someone-else", fingerprint="dev-b", network="net-b")
    earned = await LedgerEntry.filter(member_id=free.id, event="forward_engaged").first()
    assert outcome.reason != "forwarding frozen" and earned is not None
    assert earned.granted + earned.held == gam.rules.forward_points(3, True, 1.0)
