"""Gamification's public service: what happens when something earns or costs points.

:class:`Gamification` is a service object built with the collaborators it needs: the
rules, the leaderboard, how to tell a member (:class:`gamification.notices.Notices`), the
top-up provider with its callback URL and fulfilment policy, the other domains'
:class:`ForwardFacts`, and a keeper for background work. The assembly builds one per app
(``bot/subscriptions.py: build_gamification``) and keeps it under :data:`GAMIFICATION`
(pages: ``request.app[GAMIFICATION]``; handlers: ``ctx.domains.gamification``); the CLI and
the tests build their own. Nothing here is process-wide: two instances with different rules
or boards live side by side.

Other domains do not call the ``on_*`` methods: they publish events (bot.core.events) and
:class:`Scoring`, subscribed in ``bot/subscriptions.py``, calls them. What gamification needs
to know about the community (a frozen sharer, an item's difficulty) comes through the
:class:`ForwardFacts` the assembly passes in; gamification imports no community module. Each
method runs after the fact has been committed and is idempotent, so calling again (a retry,
a re-published event, a re-run job) never pays twice:

- ``await on_answer_accepted(answer_id=, answerer_id=, asker_id=, question_id=None)`` — the
  asker accepted an answer. Pays the answerer ``answer_accepted`` points once per answer;
  nothing when the answerer is the asker (accepting your own answer earns nothing).
  Exempt from the daily cap.
- ``await on_answer_helpful(answer_id=, answerer_id=, voter_id=)`` — a member rated an
  answer helpful; once per answer and voter, never for your own answer.
- ``await on_moderation_warning(member_id=, warnings=, freeze_forwarding=)`` — moderation
  warned a member: from the second warning their points are held for review.
- ``await on_member_status_changed(member_id)`` — after suspending a member or making them
  staff: takes them off the Redis boards (the SQL boards filter them at query time).
- ``await member_summary(member_id)`` — ``{"points", "pending", "titles", "badges", "credibility"}``
  for the agent's ticket view.
- ``await on_contribution_approved(contribution_id, member_id)`` — a reviewer approved a
  member's knowledge contribution.
- ``await on_content_removed(ref)`` — an answer was deleted / a forward revoked / fraud:
  reverses every entry with that ``ref`` (``answer:<id>``, ``contribution:<id>``, ``fwd:<id>``).
- ``await on_self_service(member_id)`` — a member found their answer in the knowledge
  base (a 👍, ``FeedbackGiven``); a daily streak of 3+ days pays ``self_service_streak``.
- ``await on_forward_engaged(link, recipient_key, ...)`` — a new distinct recipient opened
  a forwarded item (used by the forward handler and the ``/f/<token>`` page);
  ``await rate_forward(engagement, accurate, rater_member_id=)`` — their verdict, once.
- ``await award(member_id, event, ref, key=..., points=..., actor_id=...)`` — the general
  form; events and points come from ``rules.yaml``. Asking a question is not an event.
- ``await release_due()`` — pay out pending points whose hold has passed (hourly job, and
  ``python -m bot points release``); ``await release_held(member_id)`` — staff cleared a
  review; ``await forfeit_held(member_id)`` — fraud confirmed;
  ``await revisit_badges(member_id, reason)`` — after a reversal, a forfeit or an unmerge.
- ``await redeem(member_id, reward_id, request_key=)`` — spend and order; a top-up is
  fulfilled in the background. ``await run_expiry()`` — expire old points, remind.
- Reads: ``await summary(member_id)``, ``await standing(period, member_id)``.

Every award names the member whose action earned it (the asker, the voter, the recipient):
their trust level (gamification.trust) weighs the action and, below the trusted level, makes
the points pending. Points go through the ledger (caps, ring and farm detection, holds), then
the leaderboard and the badge rules are updated and new badges are notified once.

Helpers that need none of an instance's collaborators stay module functions
(:func:`names_and_titles`, :func:`expiring_amount`, :func:`is_sharers_device`,
:func:`moderation_flag_key`).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Protocol, cast

from aiohttp import web
from tortoise.exceptions import IntegrityError
from tortoise.functions import Sum

from bot.core.clock import utcnow
from bot.core.events import (
    AnswerAccepted,
    AnswerHelpful,
    AnswerRemoved,
    ContributionApproved,
    FeedbackGiven,
    MemberWarned,
)
from bot.core.i18n import N_, Gettext
from bot.core.identity.names import display_name
from bot.core.models import Member
from bot.core.tasks import Background
from gamification import badges, caps, graph, ledger, rewards, trust
from gamification.credibility import credibility_of
from gamification.leaderboard import Leaderboard, Standing
from gamification.models import (
    Balance,
    ForwardEngagement,
    ForwardLink,
    ForwardRating,
    LedgerEntry,
    MemberBadge,
    Redemption,
    ReviewFlag,
)
from gamification.notices import Notices
from gamification.rules import Rules
from gamification.topup import TopupProvider

log = logging.getLogger(__name__)


class ForwardFacts(Protocol):
    """What forwarding points need to know from other domains (moderation, the knowledge
    base). Gamification never imports them: the assembly passes an implementation
    (``bot/subscriptions.py``)."""

    async def forwarding_frozen(self, member_id: int) -> bool:
        """True while moderation has frozen the member's forwarding points."""
        ...

    async def item_difficulty(self, item_id: int) -> int:
        """The item's difficulty (1 when unknown), which scales forwarding points."""
        ...


class NoFacts:
    """Standalone gamification (a script, a unit test): nobody frozen, every item difficulty 1."""

    async def forwarding_frozen(self, member_id: int) -> bool:
        return False

    async def item_difficulty(self, item_id: int) -> int:
        return 1


EVENT_LABELS = {
    "answer_accepted": N_("Accepted answer"),
    "answer_helpful": N_("Answer rated helpful"),
    "contribution_approved": N_("Approved contribution"),
    "self_service_streak": N_("Self-service streak"),
    "forward_engaged": N_("Forward reached someone new"),
    "spend": N_("Redeemed"),
    "expiry": N_("Expired"),
    "reversal": N_("Reversed"),
}

SELF = -1  # actor_id for an award earned by the member's own action (a self-service streak)

# notes of awards held for a review decision, not just for time: only staff release them
REVIEW_NOTES = ("ring", "farm", "held for review")

RELEASE_LOOKBACK_DAYS = 90  # pending entries older than this were settled by review or released


@dataclass(frozen=True)
class ForwardOutcome:
    engagement: ForwardEngagement | None
    new: bool
    points: int
    reason: str = ""


@dataclass(frozen=True)
class Summary:
    balance: int
    debt: int
    held: int
    lifetime: int
    recent: list[LedgerEntry]
    next_badge: tuple[badges.Badge, int] | None
    badge_codes: list[str]


class Gamification:
    """Points, badges, boards and rewards for one app (see the module docstring).

    ``rules`` and ``board`` are what every award reads; ``notices`` (None: tell nobody) sends
    badge and expiry notifications; ``provider`` (None: the manual queue), ``callback_url`` and
    ``policy`` fulfil top-ups; ``facts`` answers forwarding's questions about the community
    (default: nobody frozen, difficulty 1); ``background`` keeps the top-up calls that run
    after the reply until they end (:meth:`close` waits for them)."""

    def __init__(
        self,
        rules: Rules,
        board: Leaderboard,
        *,
        notices: Notices | None = None,
        provider: TopupProvider | None = None,
        callback_url: str = "",
        policy: rewards.FulfilPolicy = rewards.DEFAULT_POLICY,
        facts: ForwardFacts | None = None,
        background: Background | None = None,
    ) -> None:
        self.rules = rules
        self.board = board
        self.notices = notices
        self.provider = provider
        self.callback_url = callback_url
        self.policy = policy
        self.facts: ForwardFacts = facts or NoFacts()
        self.background = background or Background("gamification")

    async def close(self) -> None:
        """Wait for the background work (top-up calls) still running; the app's shutdown."""
        await self.background.wait()

    # --- awarding -----------------------------------------------------------------------------
    async def award(
        self,
        member_id: int,
        event: str,
        ref: str,
        *,
        key: str | None = None,
        counterpart_id: int | None = None,
        item_id: int | None = None,
        points: int | None = None,
        reason: str = "",
        actor_id: int | None = None,
        anonymous_actor: bool = False,
    ) -> ledger.LedgerResult | None:
        """Award a rules.yaml event once per key (default ``<event>:<ref>``); None if it earns nothing.

        ``actor_id`` (default ``counterpart_id``; ``SELF`` for the member's own action) is the member
        whose action earned it; ``anonymous_actor``: an unknown visitor did (trust level 0). With
        neither, staff or the system acted (an approved contribution) and nothing is weighed or held."""
        rules = self.rules
        rule = rules.event(event)
        if rule is None:
            return None
        key = key or ledger.key_of(event, ref)
        if found := await ledger.existing(key):
            return found  # a replay: decided once, whatever the actor's level is now
        actor = member_id if actor_id == SELF else (actor_id if actor_id is not None else counterpart_id)
        level: int | None = (
            0
            if anonymous_actor and actor is None
            else (await trust.level_of(actor, rules) if actor is not None else None)
        )
        delta = rule.points if points is None else points
        if level is not None:
            delta = int(delta * rules.weight(event, level) + 0.5)
        if delta <= 0:
            return None
        now = utcnow()
        hold_until = trust.pending_until(rules, level, now) if level is not None else None
        giver = actor if actor is not None and actor != member_id else None
        finding = await graph.inspect(
            rules, event, giver, member_id, level if level is not None else rules.trusted_level, now
        )
        result = await ledger.award(
            member_id,
            event,
            delta,
            key=key,
            ref=ref,
            reason=reason,
            counterpart_id=counterpart_id,
            item_id=item_id,
            exempt=rule.exempt_from_daily_cap,
            policy=caps.policy_for(
                rules,
                member_id,
                event,
                counterpart_id=counterpart_id,
                item_id=item_id,
                now=now,
                hold_until=hold_until,
                suspect=finding.reason if finding else "",
            ),
        )
        if not result.duplicate:
            if finding is None and result.held > 0 and level is not None and level < rules.trusted_level:
                # awards racing each other each looked before any was written: look again now that
                # this one is; the pending points it left are then kept for the review
                finding = await graph.inspect(rules, event, giver, member_id, level, utcnow())
                if finding is not None and finding.reason == "farm":
                    await caps.flag(
                        member_id, finding.reason, finding.key, {"members": finding.members, "event": event}
                    )
                finding = None
            if finding is not None and result.note == finding.reason:
                await caps.flag(member_id, finding.reason, finding.key, {"members": finding.members, "event": event})
            elif result.note == "ring" and counterpart_id is not None:
                await caps.flag(
                    member_id,
                    "ring",
                    caps.ring_key([member_id, counterpart_id]),
                    {"members": sorted({member_id, counterpart_id}), "event": event},
                )
            await self._after_change(member_id, result.granted)
        return result

    async def _after_change(self, member_id: int, granted: int) -> None:
        """Side effects after a committed ledger change; all re-runnable."""
        if granted == 0:
            return
        member = await Member.get_or_none(id=member_id)
        if member is None:
            return
        if member.status == "active" and not member.is_staff:
            try:
                await self.board.record(member_id, granted, utcnow())
            except Exception:  # the ledger is the record; a board can be rebuilt from it
                log.exception("leaderboard update failed for member %s", member_id)
        await badges.reconcile(
            self.rules,
            member_id,
            utcnow().date(),
            notify=self.notify_badge,
            reason="award" if granted > 0 else "reversal",
        )

    async def notify_badge(self, member_id: int, badge: badges.Badge) -> None:
        """Tell the member once (the outbox key is the award key), in their language."""
        if self.notices is None:
            return
        await self.notices.send(
            member_id,
            lambda _: _(N_("🏅 New badge: %(badge)s! Send /points to see your points."), badge=_(badge.name)),
            key=badges.award_key(badge.code, member_id),
        )

    async def on_answer_accepted(
        self, answer_id: int, answerer_id: int, asker_id: int, question_id: int | None = None
    ) -> ledger.LedgerResult | None:
        if answerer_id == asker_id:
            return None
        return await self.award(answerer_id, "answer_accepted", f"answer:{answer_id}", counterpart_id=asker_id)

    async def on_answer_helpful(self, answer_id: int, answerer_id: int, voter_id: int) -> ledger.LedgerResult | None:
        if answerer_id == voter_id:
            return None
        return await self.award(
            answerer_id,
            "answer_helpful",
            f"answer:{answer_id}",
            key=ledger.key_of("answer_helpful", answer_id, voter_id),
            counterpart_id=voter_id,
        )

    async def on_moderation_warning(
        self, member_id: int, warnings: int, freeze_forwarding: bool = False, episode: int = 0
    ) -> None:
        """Repeated warnings put the member's points on hold until staff review them."""
        if not (warnings >= 2 or freeze_forwarding):
            return
        key = moderation_flag_key(member_id, episode)
        if await ReviewFlag.filter(key=key).exclude(status="open").exists():
            # staff already decided this episode's flag: a later warning is a new review, once
            # per warning count (a retried warning finds the same key)
            key = f"{key}:w{warnings}"
        await caps.flag(member_id, "moderation", key, {"warnings": warnings, "episode": episode})

    async def on_contribution_approved(self, contribution_id: int, member_id: int) -> ledger.LedgerResult | None:
        return await self.award(member_id, "contribution_approved", f"contribution:{contribution_id}")

    async def on_content_removed(self, ref: str, reason: str = "removed") -> list[ledger.LedgerResult]:
        """Reverse every earning with this ref that is not reversed yet."""
        out = []
        entries = (
            await LedgerEntry.filter(ref=ref, reversal_of_id=None)
            .exclude(event__in=("reversal", "release"))
            .order_by("id")
        )
        for entry in entries:
            result = await ledger.reverse(entry.id, reason=reason)
            if not result.duplicate:
                await self._after_change(entry.member_id, result.granted)
                if result.granted == 0:  # a held award reversed: nothing moved, but the count fell
                    await self.revisit_badges(entry.member_id, "reversal")
            out.append(result)
        return out

    async def revisit_badges(self, member_id: int, reason: str) -> badges.Outcome:
        """Grant what is now due and revoke (audited) what no longer is, after a reversal, a
        forfeit or an unmerge."""
        return await badges.reconcile(self.rules, member_id, utcnow().date(), notify=self.notify_badge, reason=reason)

    async def on_self_service(self, member_id: int) -> ledger.LedgerResult | None:
        """A helpful self-service answer today: a 3+ day streak pays once a day."""
        today = utcnow().date()
        streak = await badges.self_service_streak(member_id, today)
        result = None
        if streak >= 3:
            result = await self.award(
                member_id,
                "self_service_streak",
                f"streak:{today.isoformat()}",
                key=ledger.key_of("streak", member_id, today.isoformat()),
                actor_id=SELF,
            )
        if streak >= 7:
            await badges.evaluate(self.rules, member_id, today, notify=self.notify_badge)
        return result

    async def on_member_status_changed(self, member_id: int) -> None:
        """Call after suspending a member or making them staff: they leave the leaderboards."""
        member = await Member.get_or_none(id=member_id)
        if member is not None and (member.status != "active" or member.is_staff):
            await self.board.remove(member_id)

    # --- forwarding -----------------------------------------------------------------------------
    async def on_forward_engaged(
        self,
        link: ForwardLink,
        recipient_key: str,
        *,
        recipient_member_id: int | None = None,
        kind: str = "open",
        fingerprint: str = "",
        network: str = "",
    ) -> ForwardOutcome:
        """Record a recipient's engagement once per recipient + item; pay the sharer only for a
        new distinct person: a member, or a web visitor's device (``fingerprint``), never the
        sharer's own accounts or devices, and only a few devices per ``network`` a day."""
        rules = self.rules
        if recipient_member_id is not None and recipient_member_id == link.sharer_id:
            return ForwardOutcome(None, False, 0, "own account")
        own_device = bool(fingerprint) and await is_sharers_device(link, fingerprint)
        known_before = await ForwardEngagement.filter(
            link__sharer_id=link.sharer_id, recipient_key=recipient_key
        ).exists()
        try:
            engagement = await ForwardEngagement.create(
                link=link,
                item_id=link.item_id,
                recipient_key=recipient_key[:80],
                recipient_member_id=recipient_member_id,
                fingerprint=fingerprint[:64],
                network=network[:64],
                kind=kind,
            )
        except IntegrityError:
            engagement = await ForwardEngagement.get(item_id=link.item_id, recipient_key=recipient_key[:80])
            if engagement.link_id != link.id or engagement.paid:
                return ForwardOutcome(engagement, False, 0, "already engaged")
            # a retry after a crash between engagement and award: the award below is keyed
            known_before = await ForwardEngagement.filter(
                link__sharer_id=link.sharer_id, recipient_key=recipient_key, id__lt=engagement.id
            ).exists()
        if own_device:
            return ForwardOutcome(engagement, True, 0, "own device")
        if (
            fingerprint
            and await ForwardEngagement.filter(
                link__sharer_id=link.sharer_id,
                item_id=link.item_id,
                fingerprint=fingerprint[:64],
                paid=True,
            )
            .exclude(id=engagement.id)
            .exists()
        ):
            # one device paid for this item already: a fresh web session on it is not a new person
            return ForwardOutcome(engagement, True, 0, "same device")
        if not await caps.network_allowed(rules, link.sharer_id, network):
            return ForwardOutcome(engagement, True, 0, "same network")
        if await self.facts.forwarding_frozen(link.sharer_id):
            return ForwardOutcome(engagement, True, 0, "forwarding frozen")
        difficulty = await self.facts.item_difficulty(link.item_id)
        cred = await credibility_of(rules, link.sharer_id)
        points = rules.forward_points(difficulty, not known_before, cred.multiplier)
        result = await self.award(
            link.sharer_id,
            "forward_engaged",
            f"fwd:{engagement.id}",
            key=ledger.key_of("forward", link.item_id, recipient_key),
            counterpart_id=recipient_member_id,
            item_id=link.item_id,
            points=points,
            anonymous_actor=recipient_member_id is None,
        )
        earned = (result.granted + result.held) if result else 0
        if earned > 0:
            await ForwardEngagement.filter(id=engagement.id).update(paid=True)
        return ForwardOutcome(engagement, True, result.granted if result else 0, result.note if result else "")

    async def rate_forward(
        self, engagement: ForwardEngagement, accurate: bool, rater_member_id: int | None = None
    ) -> bool:
        """A recipient's 准确/不准确 verdict, once per engagement; poor credibility is flagged.
        The rating weighs by the rater's trust level: an anonymous visitor's or a new account's
        verdict is stored but does not move the sharer's credibility (rules: trust.weights)."""
        link = await ForwardLink.get(id=engagement.link_id)
        rules = self.rules
        level = await trust.level_of(rater_member_id, rules)
        try:
            await ForwardRating.create(
                engagement=engagement,
                sharer_id=link.sharer_id,
                item_id=link.item_id,
                accurate=accurate,
                rater_member_id=rater_member_id,
                weight=rules.weight("forward_rating", level),
            )
        except IntegrityError:
            return False
        cred = await credibility_of(rules, link.sharer_id)
        if cred.level == "poor":
            await caps.flag(
                link.sharer_id,
                "credibility",
                f"credibility:{link.sharer_id}",
                {"rate": cred.rate, "ratings": cred.ratings},
            )
        elif cred.level == "credible":
            await badges.evaluate(rules, link.sharer_id, utcnow().date(), notify=self.notify_badge)
        return True

    # --- pending points -------------------------------------------------------------------------
    async def _release(self, entries: list[LedgerEntry], reason: str) -> dict[int, int]:
        """Release each held entry not reversed or released yet; points released per member."""
        if not entries:
            return {}
        ids = [e.id for e in entries]
        done: set[str] = set(  # tortoise types flat=True as tuples
            cast(
                list[str],
                await LedgerEntry.filter(idempotency_key__in=[ledger.key_of("release", i) for i in ids]).values_list(
                    "idempotency_key", flat=True
                ),
            )
        )
        reversed_: set[int] = set(
            await LedgerEntry.filter(  # type: ignore[arg-type]  # tortoise types flat=True as tuples
                reversal_of_id__in=ids
            ).values_list("reversal_of_id", flat=True)
        )
        paid: dict[int, int] = {}
        for entry in entries:
            if entry.id in reversed_ or ledger.key_of("release", entry.id) in done:
                continue
            try:
                res = await ledger.release(entry.id, reason=reason)
            except ledger.NotReleasable:
                continue  # reversed meanwhile (fraud confirmed)
            if not res.duplicate:
                paid[entry.member_id] = paid.get(entry.member_id, 0) + res.granted
        for member_id, total in paid.items():
            await self._after_change(member_id, total)
        return paid

    async def release_held(self, member_id: int) -> int:
        """After staff clear a member's last open flag: pay out what was held for that review
        (the review stands in for the hold) and pending points whose hold has passed; returns
        points. Other pending points wait for :meth:`release_due`."""
        if await caps.has_open_flag(member_id):
            return 0
        now = utcnow()
        held = await LedgerEntry.filter(member_id=member_id, held__gt=0, reversal_of_id=None).exclude(event="release")
        due = [e for e in held if e.hold_until is None or e.hold_until <= now or e.reason in REVIEW_NOTES]
        return (await self._release(due, "released after review")).get(member_id, 0)

    async def release_due(self, now: datetime | None = None, *, batch: int = 500) -> int:
        """Pay out pending points whose hold has passed; idempotent, so the hourly job and the CLI
        may overlap. Awards held for a review (a ring, a farm, an open flag) are not time-released:
        staff clear or confirm them, even when the review item itself was lost to a crash."""
        now = now or utcnow()
        since = now - timedelta(days=RELEASE_LOOKBACK_DAYS + self.rules.hold_days)
        total, last_id = 0, 0
        while True:
            rows = (
                await LedgerEntry.filter(
                    held__gt=0,
                    hold_until__lte=now,
                    hold_until__gte=since,
                    reversal_of_id=None,
                    id__gt=last_id,
                )
                .exclude(event="release")
                .order_by("id")
                .limit(batch)
            )
            if not rows:
                return total
            last_id = rows[-1].id
            blocked = await _not_releasable({e.member_id for e in rows})
            paid = await self._release(
                [e for e in rows if e.member_id not in blocked and e.reason not in REVIEW_NOTES],
                "pending period over",
            )
            total += sum(paid.values())

    async def forfeit_held(self, member_id: int, reason: str = "fraud confirmed") -> int:
        """Staff confirmed fraud: reverse every award still held (pending or under review); the
        points never become redeemable. Returns the points taken back."""
        held = await LedgerEntry.filter(member_id=member_id, held__gt=0, reversal_of_id=None).exclude(event="release")
        if not held:
            return 0
        ids = [e.id for e in held]
        released: set[str] = set(
            await LedgerEntry.filter(  # type: ignore[arg-type]  # tortoise types flat=True as tuples
                idempotency_key__in=[ledger.key_of("release", i) for i in ids]
            ).values_list("idempotency_key", flat=True)
        )
        total = 0
        for entry in held:
            if ledger.key_of("release", entry.id) in released:
                continue  # paid out before the review: reversing it is on_content_removed's job
            res = await ledger.reverse(entry.id, reason=reason)
            if not res.duplicate:
                total += -res.held
        await self.revisit_badges(member_id, "forfeit")
        return total

    # --- rewards ----------------------------------------------------------------------------------
    async def redeem(self, member_id: int, reward_id: int, *, request_key: str) -> Redemption:
        """Spend and order (raises rewards.RedeemError); fulfilment continues in the background.
        Phone credit and data go to the member's verified phone, never a number typed in."""
        redemption = await rewards.redeem(member_id, reward_id, request_key=request_key)
        if redemption.status == "pending":
            self.background.spawn(
                rewards.fulfil(redemption, self.provider, self.callback_url, self.policy),
                name=f"fulfil-{redemption.id}",
            )
        return redemption

    async def reconcile_rewards(self, now: datetime | None = None) -> list[rewards.Settled]:
        """Resubmit top-ups left pending by transient errors and settle overdue orders
        (:func:`gamification.rewards.reconcile` with this instance's provider and policy)."""
        return await rewards.reconcile(self.provider, self.callback_url, self.policy, now=now)

    # --- reading ----------------------------------------------------------------------------------
    async def summary(self, member_id: int, recent: int = 5) -> Summary:
        bal = await ledger.balance_of(member_id)
        entries = await LedgerEntry.filter(member_id=member_id).order_by("-id").limit(recent)
        codes: list[str] = (
            await MemberBadge.filter(  # type: ignore[assignment]  # tortoise types flat=True as tuples
                member_id=member_id
            )
            .order_by("id")
            .values_list("code", flat=True)
        )
        return Summary(
            bal.balance,
            bal.debt,
            bal.held,
            bal.lifetime,
            list(entries),
            await badges.next_badge(self.rules, member_id, utcnow().date()),
            list(codes),
        )

    async def member_summary(self, member_id: int) -> dict[str, object]:
        """Points, titles, badges and credibility for staff views (the agent's ticket page)."""
        s = await self.summary(member_id, recent=0)
        cred = await credibility_of(self.rules, member_id)
        title = (await badges.titles([member_id])).get(member_id)
        return {
            "points": s.balance,
            "pending": s.held,
            "titles": [title] if title else [],
            "badges": [badges.NAMES[c] for c in s.badge_codes if c in badges.NAMES],
            "credibility": cred.level if cred.rate is None else f"{cred.level} ({cred.rate:.0%} of {cred.ratings:g})",
        }

    async def standing(self, period: str, member_id: int | None = None, *, limit: int = 10) -> Standing:
        return await self.board.standing(period, member_id, limit=limit)

    # --- expiry -----------------------------------------------------------------------------------
    async def run_expiry(self, now: datetime | None = None) -> tuple[int, int]:
        """Expire old points and remind members whose points expire soon; (expired, reminded)."""
        rules = self.rules
        now = now or utcnow()
        cutoff = now - timedelta(days=rules.expiry_days)
        soon = cutoff + timedelta(days=rules.expiry_reminder_days)
        expired = reminded = 0
        with_points: list[int] = await Balance.filter(  # type: ignore[assignment]  # tortoise: flat tuples
            balance__gt=0
        ).values_list("member_id", flat=True)
        for member_id in with_points:
            amount = await expiring_amount(member_id, cutoff)
            if amount > 0:
                try:
                    res = await ledger.spend(
                        member_id,
                        amount,
                        key=ledger.key_of("expiry", member_id, now.date()),
                        reason="points expired",
                        event="expiry",
                    )
                except ledger.InsufficientPoints:
                    continue
                if not res.duplicate:
                    expired += 1
                    await self._after_change(member_id, 0)
                continue
            upcoming = await expiring_amount(member_id, soon)
            if upcoming > 0 and self.notices is not None:
                sent = await self.notices.send(
                    member_id,
                    lambda _: _(
                        N_("%(points)s of your points expire within %(days)s days. Send /redeem to use them."),
                        points=upcoming,
                        days=rules.expiry_reminder_days,
                    ),
                    key=ledger.key_of("expiry-reminder", member_id, soon.strftime("%Y-%m")),
                )
                reminded += 1 if sent else 0
        return expired, reminded


# the app's instance, built by the assembly (bot/subscriptions.py) when the app starts
GAMIFICATION: web.AppKey[Gamification] = web.AppKey("gamification", Gamification)


# --- helpers that need no instance ---------------------------------------------------------------
def moderation_flag_key(member_id: int, episode: int = 0) -> str:
    """One review flag per member and moderation episode: after staff cleared a hold, the
    warnings of a new episode open a new flag (episode 0 keeps the original per-member key)."""
    return f"moderation:{member_id}" if episode <= 0 else f"moderation:{member_id}:{episode}"


async def is_sharers_device(link: ForwardLink, fingerprint: str) -> bool:
    """A device the sharer used to share (this link or any other): their own opens never pay."""
    if not fingerprint:
        return False
    if fingerprint == link.creator_fingerprint:
        return True
    return await ForwardLink.filter(sharer_id=link.sharer_id, creator_fingerprint=fingerprint).exists()


async def _not_releasable(member_ids: set[int]) -> set[int]:
    """Members whose pending points must wait: under review, confirmed fraud (a forfeit cut
    short by a crash must not turn into a payout), suspended."""
    blocked = {m for m in member_ids if await caps.has_open_flag(m)}
    blocked |= set(
        await ReviewFlag.filter(
            member_id__in=list(member_ids),
            status="confirmed",  # type: ignore[arg-type]  # tortoise: flat tuples
            reason__in=("ring", "farm"),
        ).values_list("member_id", flat=True)
    )
    blocked |= set(
        await Member.filter(  # type: ignore[arg-type]  # tortoise types flat=True as tuples
            id__in=list(member_ids)
        )
        .exclude(status="active")
        .values_list("id", flat=True)
    )
    return blocked


async def names_and_titles(member_ids: list[int], gettext: Gettext) -> dict[int, tuple[str, str]]:
    """Display name (``bot.core.identity.names``, in the viewer's ``gettext``) and title msgid per
    member, for boards and the community."""
    members = await Member.filter(id__in=member_ids).only("id", "nickname", "display_name", "phone")
    titles = await badges.titles(member_ids)
    return {m.id: (display_name(m, gettext), titles.get(m.id, "")) for m in members}


async def expiring_amount(member_id: int, cutoff: datetime) -> int:
    """Points earned before ``cutoff`` not yet consumed (oldest points are spent first)."""
    earned: list[int | None] = (
        await LedgerEntry.filter(  # type: ignore[assignment]  # tortoise types flat=True as tuples
            member_id=member_id, granted__gt=0, created_at__lt=cutoff
        )
        .annotate(s=Sum("granted"))
        .values_list("s", flat=True)
    )
    consumed: list[int | None] = (
        await LedgerEntry.filter(  # type: ignore[assignment]  # tortoise types flat=True as tuples
            member_id=member_id, granted__lt=0
        )
        .annotate(s=Sum("granted"))
        .values_list("s", flat=True)
    )
    bal = await ledger.balance_of(member_id)
    amount = int(earned[0] or 0) + int(consumed[0] or 0) if earned else 0
    return max(0, min(amount, bal.balance))


# --- subscriber (wired in bot/subscriptions.py) -----------------------------------------------
class Scoring:
    """Points for what other domains publish (bot.core.events), on one :class:`Gamification`.
    Each handler is idempotent by the ids the event carries (``answer:<id>``,
    ``contribution:<id>``, the voter, the day), so a re-published event never pays twice; the
    bus logs a failure and the publisher's fact (an accept, a vote, an approval) stands."""

    def __init__(self, gamification: Gamification) -> None:
        self.gamification = gamification

    async def answer_accepted(self, event: AnswerAccepted) -> None:
        await self.gamification.on_answer_accepted(
            event.answer_id, event.answerer_id, event.asker_id, event.question_id
        )

    async def answer_helpful(self, event: AnswerHelpful) -> None:
        await self.gamification.on_answer_helpful(event.answer_id, event.answerer_id, event.voter_id)

    async def answer_removed(self, event: AnswerRemoved) -> None:
        await self.gamification.on_content_removed(f"answer:{event.answer_id}", reason=event.reason)

    async def contribution_approved(self, event: ContributionApproved) -> None:
        await self.gamification.on_contribution_approved(event.contribution_id, event.member_id)

    async def feedback_given(self, event: FeedbackGiven) -> None:
        """A 👍 is a self-service success: a daily streak pays."""
        if event.helpful:
            await self.gamification.on_self_service(event.member_id)

    async def member_warned(self, event: MemberWarned) -> None:
        await self.gamification.on_moderation_warning(
            event.member_id, event.warnings, event.forwarding_frozen, event.episode
        )
