"""Who reacts to which domain event: the one place the cross-domain arrows are wired.

Publishers (handlers, community/qa, community/inbox, community/moderation,
community/knowledge_admin) only ``await services.events.publish(SomeEvent(...))``; they
neither know nor import their subscribers. This assembly module builds each subscriber with
the collaborators it needs and subscribes it, with real imports, so a reader (or an import
graph tool) sees every arrow here. docs/architecture.md, "Events", has the same table.

Order matters only within one event type: subscribers run in the order below.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from bot.core.events import (
    AnswerAccepted,
    AnswerHelpful,
    AnswerRemoved,
    ContributionApproved,
    FeedbackGiven,
    ItemPicked,
    MemberWarned,
    TicketResolved,
)
from community.knowledge_admin.learning import VariantLearning
from community.models import KnowledgeItem
from community.moderation.service import is_forwarding_frozen
from community.review import service as review
from gamification import rewards, topup
from gamification.leaderboard import make_leaderboard
from gamification.notices import Notices
from gamification.rules import load_rules
from gamification.service import Gamification, Scoring
from gamification.web import Refusal

if TYPE_CHECKING:
    from bot.core.services import Services
    from bot.staff.models import StaffUser


class CommunityFacts:
    """Gamification's view of moderation and the knowledge base (``gamification.service.ForwardFacts``):
    the assembly adapts community here so gamification never imports it."""

    async def forwarding_frozen(self, member_id: int) -> bool:
        return await is_forwarding_frozen(member_id)

    async def item_difficulty(self, item_id: int) -> int:
        # any status, as before: a link to an item retired since still pays by its difficulty
        item = await KnowledgeItem.get_or_none(id=item_id)
        return item.difficulty if item is not None else 1


class ReviewQueueDecisions:
    """``/admin/rewards``' decisions on review flags and manually queued orders
    (``gamification.web.StaffDecisions``) through the review queue's one decision path,
    ``community.review.service.decide_target``; its refusals (already decided, not allowed)
    become the page's ``Refusal``. Set on the app by ``bot.app.create_app``, with the app's
    gamification (a points review pays out or forfeits through it)."""

    def __init__(self, gamification: Gamification) -> None:
        self.gamification = gamification

    async def decide(self, kind: str, target_id: int, approve: bool, staff: "StaffUser", note: str) -> Refusal | None:
        try:
            await review.decide_target(
                kind,
                target_id,
                "approve" if approve else "reject",
                staff,
                note,
                gamification=self.gamification,
            )
        except review.ReviewError as exc:
            return Refusal(exc.status, exc.msgid, dict(exc.params))
        return None


def build_gamification(services: "Services") -> Gamification:
    """The app's gamification, with the collaborators it needs: the rules, the leaderboard
    (Redis when configured, on the stores' shared pool), badge and expiry notices through the
    outbox in the member's language, the top-up provider with its callback URL and fulfilment
    policy, and the community facts. The app factory keeps it under
    ``gamification.service.GAMIFICATION`` and hands it to the handlers and the merge hook."""
    settings = services.settings
    provider = (
        topup.HttpTopupProvider(settings.topup_api_base, settings.topup_secret) if settings.topup_api_base else None
    )
    base = (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
    return Gamification(
        load_rules(),
        make_leaderboard(services.redis if settings.redis_url else None, prefix="everycsr:lb"),
        notices=Notices(services.translator, services.outbox),
        provider=provider,
        callback_url=f"{base}/api/v1/topup/callback",
        policy=rewards.policy_from(settings),
        facts=CommunityFacts(),
    )


def subscribe_all(services: "Services", gamification: Gamification) -> None:
    """Wire every domain subscriber onto ``services.events``; once per Services.
    ``gamification`` is the app's instance (:func:`build_gamification`): its rules, board and
    facts are what scoring uses."""
    bus = services.events
    if bus.subscriptions():
        raise RuntimeError("subscribe_all called twice on the same services")
    scoring = Scoring(gamification)
    learning = VariantLearning(services)

    # Q&A -> points
    bus.subscribe(AnswerAccepted, scoring.answer_accepted)
    bus.subscribe(AnswerHelpful, scoring.answer_helpful)
    bus.subscribe(AnswerRemoved, scoring.answer_removed)
    # self-service -> learned phrasings, points
    bus.subscribe(ItemPicked, learning.on_item_picked)
    bus.subscribe(FeedbackGiven, scoring.feedback_given)
    # people -> learned phrasings
    bus.subscribe(TicketResolved, learning.on_ticket_resolved)
    # knowledge review -> points
    bus.subscribe(ContributionApproved, scoring.contribution_approved)
    # moderation -> points held, review flag
    bus.subscribe(MemberWarned, scoring.member_warned)
    # OfferAccepted (handlers/offers.py) has no subscriber yet: the acceptance itself is
    # recorded by community.offers.service.follow before it is published.
