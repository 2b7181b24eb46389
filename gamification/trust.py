"""A member's standing: trust level and the points they hold, redeemable or pending.

The one place other packages (the ``/api/v1/me`` view, redemption, the inbox) ask how far a
member is trusted; the levels themselves are rules data (``gamification/rules.yaml``)."""
from __future__ import annotations

from dataclasses import dataclass

from bot.models import Member
from gamification import ledger


@dataclass(frozen=True)
class Standing:
    trust_level: int
    balance: int  # redeemable now
    pending: int  # earned, held until the hold period passes or a review releases it


async def trust_level(member: Member) -> int:
    """0: new and unverified; 1: verified phone."""
    return 1 if member.phone_verified_at is not None else 0


async def standing_of(member: Member) -> Standing:
    bal = await ledger.balance_of(member.id)
    return Standing(trust_level=await trust_level(member), balance=bal.balance, pending=bal.held)
