"""Gamification's public functions: what other packages call when something happens.

Call these after the fact has been committed (an answer accepted, a vote stored); each is
idempotent, so calling again (a retry, a re-run job) never pays twice:

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
- ``await member_summary(member_id)`` — ``{"points", "titles", "badges", "credibility"}``
  for the agent's ticket view.
- ``await on_contribution_approved(contribution_id, member_id)`` — a reviewer approved a
  member's knowledge contribution.
- ``await on_content_removed(ref)`` — an answer was deleted / a forward revoked / fraud:
  reverses every entry with that ``ref`` (``answer:<id>``, ``contribution:<id>``, ``fwd:<id>``).
- ``await on_self_service(member_id)`` — a member found their answer in the knowledge
  base (the 👍 hook); a daily streak of 3+ days pays ``self_service_streak``.
- ``await on_forward_engaged(link, recipient_key, ...)`` — a new distinct recipient opened
  a forwarded item (used by the forward handler and the ``/f/<token>`` page).
- ``await award(member_id, event, ref, key=..., points=...)`` — the general form; events
  and points come from ``rules.yaml``. Asking a question is not an event: it earns nothing.

Points go through the ledger (caps, ring detection, holds), then the leaderboard and the
badge rules are updated and new badges are notified once on the member's channel.
"""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING

from tortoise.exceptions import IntegrityError
from tortoise.functions import Sum

from bot.i18n import N_, Gettext
from bot.identity.names import display_name
from bot.messages import Reply
from bot.models import Member
from community.models import KnowledgeItem
from gamification import badges, caps, ledger
from gamification.credibility import credibility_of
from gamification.leaderboard import Leaderboard, SqlLeaderboard, Standing
from gamification.models import Balance, ForwardEngagement, ForwardLink, ForwardRating, LedgerEntry, Redemption
from gamification.rules import Rules, load_rules
from gamification.topup import TopupProvider

if TYPE_CHECKING:
    from bot.services import Services

log = logging.getLogger(__name__)


@dataclass
class Runtime:
    rules: Rules
    board: Leaderboard
    services: "Services | None" = None
    provider: "TopupProvider | None" = None  # phone credit / data; None: manual queue
    callback_url: str = ""
    tasks: set["asyncio.Task[object]"] = field(default_factory=set)

    def spawn(self, coro: "Coroutine[object, object, object]") -> None:
        """Run after the reply (provider calls); keep a reference so it is not collected."""
        task = asyncio.create_task(coro)
        self.tasks.add(task)
        task.add_done_callback(self.tasks.discard)


_runtime: Runtime | None = None


def configure(services: "Services | None", board: Leaderboard | None = None, rules: Rules | None = None,
              provider: "TopupProvider | None" = None, callback_url: str = "") -> Runtime:
    """Bind the process's services (outbox, translator), leaderboard and top-up provider;
    called by web.setup when the app starts."""
    global _runtime
    _runtime = Runtime(rules or load_rules(), board or SqlLeaderboard(), services, provider, callback_url)
    return _runtime


def runtime() -> Runtime:
    return _runtime or configure(None)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


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


# --- awarding ---------------------------------------------------------------------------------
async def award(
    member_id: int, event: str, ref: str, *, key: str | None = None, counterpart_id: int | None = None,
    item_id: int | None = None, points: int | None = None, reason: str = "",
) -> ledger.LedgerResult | None:
    """Award a rules.yaml event once per key (default ``<event>:<ref>``); None if it earns nothing."""
    rt = runtime()
    rule = rt.rules.event(event)
    if rule is None:
        return None
    delta = rule.points if points is None else points
    if delta <= 0:
        return None
    result = await ledger.award(
        member_id, event, delta, key=key or ledger.key_of(event, ref), ref=ref, reason=reason,
        counterpart_id=counterpart_id, item_id=item_id, exempt=rule.exempt_from_daily_cap,
        policy=caps.policy_for(rt.rules, member_id, event, counterpart_id=counterpart_id, item_id=item_id),
    )
    if not result.duplicate:
        await _after_change(member_id, result.granted, note=result.note, counterpart_id=counterpart_id)
    return result


async def _after_change(member_id: int, granted: int, *, note: str = "", counterpart_id: int | None = None) -> None:
    """Side effects after a committed ledger change; all re-runnable."""
    rt = runtime()
    if note == "ring" and counterpart_id is not None:
        await caps.flag_ring(member_id, counterpart_id)
    if granted == 0:
        return
    member = await Member.get_or_none(id=member_id)
    if member is None:
        return
    if member.status == "active" and not member.is_staff:
        try:
            await rt.board.record(member_id, granted, utcnow())
        except Exception:  # the ledger is the record; a board can be rebuilt from it
            log.exception("leaderboard update failed for member %s", member_id)
    if granted > 0:
        await badges.evaluate(rt.rules, member_id, utcnow().date(), notify=notify_badge)


async def notify_badge(member_id: int, badge: badges.Badge) -> None:
    """Tell the member once (the outbox key is the award key), in their language."""
    rt = runtime()
    if rt.services is None:
        return
    member = await Member.get_or_none(id=member_id)
    if member is None:
        return
    tr = rt.services.translator
    text = tr.gettext(member.locale, N_("🏅 New badge: %(badge)s! Send /points to see your points."),
                      badge=tr.gettext(member.locale, badge.name))
    await rt.services.outbox.to_member(
        member_id, Reply(text=text, kind="notification"), purpose="notification",
        idempotency_key=badges.award_key(badge.code, member_id),
    )


async def on_answer_accepted(answer_id: int, answerer_id: int, asker_id: int,
                             question_id: int | None = None) -> ledger.LedgerResult | None:
    if answerer_id == asker_id:
        return None
    return await award(answerer_id, "answer_accepted", f"answer:{answer_id}", counterpart_id=asker_id)


async def on_answer_helpful(answer_id: int, answerer_id: int, voter_id: int) -> ledger.LedgerResult | None:
    if answerer_id == voter_id:
        return None
    return await award(answerer_id, "answer_helpful", f"answer:{answer_id}",
                       key=ledger.key_of("answer_helpful", answer_id, voter_id), counterpart_id=voter_id)


async def on_moderation_warning(member_id: int, warnings: int, freeze_forwarding: bool = False) -> None:
    """Repeated warnings put the member's points on hold until staff review them."""
    if warnings >= 2 or freeze_forwarding:
        await caps.flag(member_id, "moderation", f"moderation:{member_id}", {"warnings": warnings})


async def member_summary(member_id: int) -> dict[str, object]:
    """Points, titles, badges and credibility for staff views (the agent's ticket page)."""
    s = await summary(member_id, recent=0)
    cred = await credibility_of(runtime().rules, member_id)
    title = (await badges.titles([member_id])).get(member_id)
    return {
        "points": s.balance,
        "titles": [title] if title else [],
        "badges": [badges.BY_CODE[c].name for c in s.badge_codes if c in badges.BY_CODE],
        "credibility": cred.level if cred.rate is None else f"{cred.level} ({cred.rate:.0%} of {cred.ratings})",
    }


async def on_contribution_approved(contribution_id: int, member_id: int) -> ledger.LedgerResult | None:
    return await award(member_id, "contribution_approved", f"contribution:{contribution_id}")


async def on_content_removed(ref: str, reason: str = "removed") -> list[ledger.LedgerResult]:
    """Reverse every earning with this ref that is not reversed yet."""
    out = []
    entries = await LedgerEntry.filter(ref=ref, reversal_of_id=None).exclude(event="reversal").order_by("id")
    for entry in entries:
        result = await ledger.reverse(entry.id, reason=reason)
        if not result.duplicate:
            await _after_change(entry.member_id, result.granted)
        out.append(result)
    return out


async def on_self_service(member_id: int) -> ledger.LedgerResult | None:
    """A helpful self-service answer today: a 3+ day streak pays once a day."""
    today = utcnow().date()
    streak = await badges.self_service_streak(member_id, today)
    result = None
    if streak >= 3:
        result = await award(member_id, "self_service_streak", f"streak:{today.isoformat()}",
                             key=ledger.key_of("streak", member_id, today.isoformat()))
    if streak >= 7:
        await badges.evaluate(runtime().rules, member_id, today, notify=notify_badge)
    return result


# --- forwarding --------------------------------------------------------------------------------
@dataclass(frozen=True)
class ForwardOutcome:
    engagement: ForwardEngagement | None
    new: bool
    points: int
    reason: str = ""


async def on_forward_engaged(
    link: ForwardLink, recipient_key: str, *, recipient_member_id: int | None = None, kind: str = "open",
    fingerprint: str = "",
) -> ForwardOutcome:
    """Record a recipient's engagement once per recipient + item; pay the sharer only for a
    new distinct person (never the sharer's own accounts or device)."""
    rt = runtime()
    if recipient_member_id is not None and recipient_member_id == link.sharer_id:
        return ForwardOutcome(None, False, 0, "own account")
    own_device = bool(fingerprint) and fingerprint == link.creator_fingerprint
    known_before = await ForwardEngagement.filter(link__sharer_id=link.sharer_id, recipient_key=recipient_key).exists()
    try:
        engagement = await ForwardEngagement.create(
            link=link, item_id=link.item_id, recipient_key=recipient_key[:80], recipient_member_id=recipient_member_id,
            fingerprint=fingerprint[:64], kind=kind,
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
    if not await caps.fingerprint_allowed(rt.rules, link.sharer_id, fingerprint):
        return ForwardOutcome(engagement, True, 0, "same network")
    if await _forwarding_frozen(link.sharer_id):
        return ForwardOutcome(engagement, True, 0, "forwarding frozen")
    item = await KnowledgeItem.get_or_none(id=link.item_id)
    cred = await credibility_of(rt.rules, link.sharer_id)
    points = rt.rules.forward_points(item.difficulty if item else 1, not known_before, cred.multiplier)
    result = await award(
        link.sharer_id, "forward_engaged", f"fwd:{engagement.id}",
        key=ledger.key_of("forward", link.item_id, recipient_key), counterpart_id=recipient_member_id,
        item_id=link.item_id, points=points,
    )
    granted = result.granted if result else 0
    if granted > 0:
        await ForwardEngagement.filter(id=engagement.id).update(paid=True)
    return ForwardOutcome(engagement, True, granted, result.note if result else "")


async def on_member_status_changed(member_id: int) -> None:
    """Call after suspending a member or making them staff: they leave the leaderboards."""
    member = await Member.get_or_none(id=member_id)
    if member is not None and (member.status != "active" or member.is_staff):
        await runtime().board.remove(member_id)


async def release_held(member_id: int) -> int:
    """After staff clear a member's last open flag: pay out what was held; returns points."""
    if await caps.has_open_flag(member_id):
        return 0
    total = 0
    held = await LedgerEntry.filter(member_id=member_id, held__gt=0, reversal_of_id=None).exclude(event="release")
    for entry in held:
        if await LedgerEntry.filter(reversal_of_id=entry.id).exists():
            continue  # reversed (fraud confirmed): nothing to release
        res = await ledger.release(entry.id)
        if not res.duplicate:
            total += res.granted
    if total:
        await _after_change(member_id, total)
    return total


async def _forwarding_frozen(member_id: int) -> bool:
    """Moderation may freeze a member's forwarding points (community.moderation)."""
    try:
        from community.moderation.service import is_forwarding_frozen
    except ImportError:
        return False
    return await is_forwarding_frozen(member_id)


async def rate_forward(engagement: ForwardEngagement, accurate: bool) -> bool:
    """A recipient's 准确/不准确 verdict, once per engagement; poor credibility is flagged."""
    link = await ForwardLink.get(id=engagement.link_id)
    try:
        await ForwardRating.create(engagement=engagement, sharer_id=link.sharer_id, item_id=link.item_id, accurate=accurate)
    except IntegrityError:
        return False
    rt = runtime()
    cred = await credibility_of(rt.rules, link.sharer_id)
    if cred.level == "poor":
        await caps.flag(link.sharer_id, "credibility", f"credibility:{link.sharer_id}",
                        {"rate": cred.rate, "ratings": cred.ratings})
    elif cred.level == "credible":
        await badges.evaluate(rt.rules, link.sharer_id, utcnow().date(), notify=notify_badge)
    return True


# --- rewards ----------------------------------------------------------------------------------------
async def redeem(member_id: int, reward_id: int, *, request_key: str, phone: str = "") -> "Redemption":
    """Spend and order (raises rewards.RedeemError); fulfilment continues in the background."""
    from gamification import rewards

    redemption = await rewards.redeem(member_id, reward_id, request_key=request_key, phone=phone)
    rt = runtime()
    if redemption.status == "pending":
        rt.spawn(rewards.fulfil(redemption, rt.provider, rt.callback_url))
    return redemption


# --- reading -------------------------------------------------------------------------------------
@dataclass(frozen=True)
class Summary:
    balance: int
    debt: int
    held: int
    lifetime: int
    recent: list[LedgerEntry]
    next_badge: tuple[badges.Badge, int] | None
    badge_codes: list[str]


async def summary(member_id: int, recent: int = 5) -> Summary:
    rt = runtime()
    bal = await ledger.balance_of(member_id)
    entries = await LedgerEntry.filter(member_id=member_id).order_by("-id").limit(recent)
    from gamification.models import MemberBadge

    codes = await MemberBadge.filter(member_id=member_id).order_by("id").values_list("code", flat=True)
    return Summary(bal.balance, bal.debt, bal.held, bal.lifetime, list(entries),
                   await badges.next_badge(rt.rules, member_id, utcnow().date()), list(codes))


async def standing(period: str, member_id: int | None = None, *, limit: int = 10) -> Standing:
    return await runtime().board.standing(period, member_id, limit=limit)


async def names_and_titles(member_ids: list[int], gettext: Gettext) -> dict[int, tuple[str, str]]:
    """Display name (``bot.identity.names``, in the viewer's ``gettext``) and title msgid per
    member, for boards and the community."""
    members = await Member.filter(id__in=member_ids).only("id", "nickname", "display_name", "phone")
    titles = await badges.titles(member_ids)
    return {m.id: (display_name(m, gettext), titles.get(m.id, "")) for m in members}


# --- expiry -----------------------------------------------------------------------------------------
async def expiring_amount(member_id: int, cutoff: datetime) -> int:
    """Points earned before ``cutoff`` not yet consumed (oldest points are spent first)."""
    earned = await LedgerEntry.filter(member_id=member_id, granted__gt=0, created_at__lt=cutoff).annotate(
        s=Sum("granted")).values_list("s", flat=True)
    consumed = await LedgerEntry.filter(member_id=member_id, granted__lt=0).annotate(
        s=Sum("granted")).values_list("s", flat=True)
    bal = await ledger.balance_of(member_id)
    amount = int(earned[0] or 0) + int(consumed[0] or 0) if earned else 0
    return max(0, min(amount, bal.balance))


async def run_expiry(now: datetime | None = None) -> tuple[int, int]:
    """Expire old points and remind members whose points expire soon; (expired, reminded)."""
    rt = runtime()
    now = now or utcnow()
    cutoff = now - timedelta(days=rt.rules.expiry_days)
    soon = cutoff + timedelta(days=rt.rules.expiry_reminder_days)
    expired = reminded = 0
    for member_id in await Balance.filter(balance__gt=0).values_list("member_id", flat=True):
        amount = await expiring_amount(member_id, cutoff)
        if amount > 0:
            try:
                res = await ledger.spend(member_id, amount, key=ledger.key_of("expiry", member_id, now.date()),
                                         reason="points expired", event="expiry")
            except ledger.InsufficientPoints:
                continue
            if not res.duplicate:
                expired += 1
                await _after_change(member_id, 0)
            continue
        upcoming = await expiring_amount(member_id, soon)
        if upcoming > 0 and rt.services is not None:
            member = await Member.get(id=member_id)
            tr = rt.services.translator
            text = tr.gettext(member.locale, N_("%(points)s of your points expire within %(days)s days. Send /redeem to use them."),
                              points=upcoming, days=rt.rules.expiry_reminder_days)
            row = await rt.services.outbox.to_member(
                member_id, Reply(text=text, kind="notification"), purpose="notification",
                idempotency_key=ledger.key_of("expiry-reminder", member_id, soon.strftime("%Y-%m")),
            )
            reminded += 1 if row else 0
    return expired, reminded
