"""Typed domain events and the in-process bus that carries them across domains.

A domain that makes something happen (the asker accepts an answer, a member picks a "did you
mean" choice) publishes a frozen event after the fact is committed; other domains react in
subscribers wired in one visible place (``bot/subscriptions.py``), as Discourse's
``DiscourseEvent`` and Chatwoot's listeners do. So a reader follows an arrow with one grep
instead of guessing hook names in a dict.

Semantics, kept from the guarded hooks this replaces:

- subscribers run in the order they subscribed, one after the other, in the publisher's task;
- a subscriber that raises is logged and skipped: a scoring failure never undoes an accept,
  and the next subscriber still runs;
- events carry the ids the subscribers key their work on (``answer_id``, ``contribution_id``
  ...), so a re-published event (a retry) never pays twice: idempotency lives in the
  subscriber's own keys, as before.

Kernel module: imports nothing outside ``bot.core``.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, TypeVar

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Event:
    """Base of every domain event (a marker: subscribe to a concrete type)."""


# --- Q&A (community/qa) ---------------------------------------------------------------------
@dataclass(frozen=True)
class AnswerAccepted(Event):
    """The asker accepted an answer (committed: the question is closed)."""

    answer_id: int
    answerer_id: int
    asker_id: int
    question_id: int


@dataclass(frozen=True)
class AnswerHelpful(Event):
    """A member rated someone else's answer helpful (their vote is stored, once)."""

    answer_id: int
    answerer_id: int
    voter_id: int


@dataclass(frozen=True)
class AnswerRemoved(Event):
    """A reviewer rejected a visible or held answer: whatever it earned is taken back."""

    answer_id: int
    reason: str = "moderation"


# --- self-service (handlers/ask.py, handlers/feedback.py) -----------------------------------
@dataclass(frozen=True)
class ItemPicked(Event):
    """A member picked a "did you mean" choice offered for their last question.

    ``downvoted_item_id``: the item the member had just rated 👎 in this conversation (None
    when they had not), so a pick of another item is the better answer to that question."""

    member_id: int
    item_id: int
    query: str
    downvoted_item_id: int | None = None


@dataclass(frozen=True)
class FeedbackGiven(Event):
    """A member's 👍/👎 on an answer, stored once per shown answer."""

    member_id: int
    item_id: int
    helpful: bool


# --- people (community/inbox) ---------------------------------------------------------------
@dataclass(frozen=True)
class TicketResolved(Event):
    """An agent closed a ticket as answered by a knowledge item; ``question`` is what the
    member asked (empty when the ticket has no question text)."""

    ticket_id: int
    member_id: int
    item_id: int
    question: str


# --- robot (handlers/offers.py) -------------------------------------------------------------
@dataclass(frozen=True)
class OfferAccepted(Event):
    """A member pressed an offer's button; published once per member and offer display."""

    member_id: int
    offer_id: int
    channel: str


# --- knowledge (community/knowledge_admin) --------------------------------------------------
@dataclass(frozen=True)
class ContributionApproved(Event):
    """A reviewer approved a member's knowledge contribution (decided once)."""

    contribution_id: int
    member_id: int


# --- moderation (community/moderation) ------------------------------------------------------
@dataclass(frozen=True)
class MemberWarned(Event):
    """Moderation sent a member the caring warning. ``warnings`` counts this episode's
    warnings; ``forwarding_frozen``: their forwarding points are frozen from now on;
    ``episode`` starts again after a lifted freeze or a staff decision."""

    member_id: int
    warnings: int
    forwarding_frozen: bool
    episode: int = 0


E = TypeVar("E", bound=Event)
Subscriber = Callable[[Any], Awaitable[None]]


@dataclass(frozen=True)
class Subscription:
    """One row of the wiring, for docs and tests: which handler runs on which event."""

    event_type: type[Event]
    handler: Subscriber

    @property
    def name(self) -> str:
        return getattr(self.handler, "__qualname__", repr(self.handler))


class EventBus:
    """In-process publish/subscribe by event type (exact type, no inheritance walk)."""

    def __init__(self) -> None:
        self._subs: dict[type[Event], list[Subscriber]] = {}

    def subscribe(self, event_type: type[E], handler: Callable[[E], Awaitable[None]]) -> None:
        """Run ``handler(event)`` on every published ``event_type``, after earlier subscribers."""
        if not (isinstance(event_type, type) and issubclass(event_type, Event)):
            raise TypeError(f"not an event type: {event_type!r}")
        self._subs.setdefault(event_type, []).append(handler)

    def subscribers(self, event_type: type[Event]) -> list[Subscriber]:
        return list(self._subs.get(event_type, ()))

    def subscriptions(self) -> list[Subscription]:
        """Every (event type, handler) pair in subscription order."""
        return [Subscription(t, h) for t, hs in self._subs.items() for h in hs]

    async def publish(self, event: Event) -> int:
        """Run the event's subscribers in order; a failing one is logged and skipped so the
        publisher's committed fact stands. Returns how many subscribers succeeded."""
        ok = 0
        for handler in self._subs.get(type(event), ()):
            try:
                await handler(event)
            except Exception:  # one subscriber's failure never undoes the fact or stops the next
                log.exception("subscriber %s failed on %r", getattr(handler, "__qualname__", handler), event)
            else:
                ok += 1
        return ok
