"""A member's standing: trust level and the points they hold, redeemable or pending.

The one place other packages (the ``/api/v1/me`` view, redemption, the inbox, the scoring
policy) ask how far a member is trusted. The levels are rules data
(``gamification/rules.yaml`` ``trust.levels``, Discourse-style: 0 new, 1 basic, 2 member,
3 regular): a member has the highest level whose every requirement holds — a verified phone,
account age, messages sent, points ever granted, no open review item.

Points earned through the action of a member below ``trust.hold.trusted_level`` (the asker
who accepts, the voter, the forward's recipient) are *pending* (``LedgerEntry.hold_until``)
and not redeemable until the release job pays them out; see :func:`pending_until`.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from bot.core.clock import utcnow as _utcnow
from bot.core.models import Member, TranscriptEntry
from gamification import caps, ledger
from gamification.models import Balance
from gamification.rules import Rules, TrustLevel, load_rules


@dataclass(frozen=True)
class Standing:
    trust_level: int
    balance: int  # redeemable now
    pending: int  # earned, held until the hold period passes or a review releases it


async def _meets(member: Member, need: TrustLevel, now: datetime) -> bool:
    """Cheap checks first; the counting queries only when the cheap ones pass."""
    if need.verified_phone and member.phone_verified_at is None:
        return False
    if need.account_age_days and (
        member.created_at is None or now - member.created_at < timedelta(days=need.account_age_days)
    ):
        return False
    if need.lifetime_points:
        bal = await Balance.get_or_none(member_id=member.id)
        if bal is None or bal.lifetime < need.lifetime_points:
            return False
    if need.messages and await TranscriptEntry.filter(member_id=member.id, direction="in").count() < need.messages:
        return False
    if need.no_open_flags and await caps.has_open_flag(member.id):
        return False
    return True


async def trust_level(member: Member, rules: Rules | None = None, *, now: datetime | None = None) -> int:
    """The member's trust level (0 for suspended members: they are trusted with nothing)."""
    rules = rules or load_rules()
    if member.status != "active":
        return 0
    at = now or _utcnow()
    for need in sorted(rules.trust_levels, key=lambda t: -t.level):
        if need.level == 0 or await _meets(member, need, at):
            return need.level
    return 0


async def level_of(member_id: int | None, rules: Rules | None = None) -> int:
    """The level of an actor named by id; an unknown or anonymous actor (a web visitor) is 0."""
    if member_id is None:
        return 0
    member = await Member.get_or_none(id=member_id)
    return await trust_level(member, rules) if member else 0


def pending_until(rules: Rules, actor_level: int, now: datetime | None = None) -> datetime | None:
    """When points earned through an action of a member at ``actor_level`` become redeemable;
    None when that member is trusted (they pay at once)."""
    if actor_level >= rules.trusted_level or rules.hold_days <= 0:
        return None
    return (now or _utcnow()) + timedelta(days=rules.hold_days)


def level_name(rules: Rules, level: int) -> str:
    return next((t.name for t in rules.trust_levels if t.level == level), str(level))


async def standing_of(member: Member) -> Standing:
    """Trust level, redeemable balance and pending (held) points: what ``/api/v1/me`` shows."""
    bal = await ledger.balance_of(member.id)
    return Standing(trust_level=await trust_level(member), balance=bal.balance, pending=bal.held)
