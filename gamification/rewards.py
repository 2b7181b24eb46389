"""Rewards: catalogue, redemption and fulfilment.

Redeeming needs a verified phone (``Member.phone_verified_at``), and phone credit and data
go to that number only: a member never types where the value goes. It spends the
redeemable points at once (a ledger spend; pending points cannot be spent) and, in the same transaction,
checks the per-member limit, takes one from stock and writes the fulfilment order
(:class:`Redemption`). Top-ups and data packs then go to the top-up provider; gifts (and
top-ups when no provider is configured) wait in the staff's manual fulfilment queue.
A failed fulfilment refunds the points through the ledger (a reversal of the spend)
and puts the stock back — once, whichever of callback, retry or staff gets there first.
"""
from __future__ import annotations

import logging

import phonenumbers
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F

from bot.models import Member
from gamification import ledger
from gamification.models import LedgerEntry, Redemption, Reward
from gamification.topup import TopupError, TopupOrder, TopupProvider

log = logging.getLogger(__name__)

KINDS = ("topup", "data", "gift")
OPEN = ("pending", "submitted", "queued")


class RedeemError(Exception):
    """Why a redemption was refused: unavailable, unverified, limit, out_of_stock, insufficient."""

    def __init__(self, code: str) -> None:
        super().__init__(code)
        self.code = code


def normalize_phone(raw: str, region: str = "CN") -> str | None:
    try:
        num = phonenumbers.parse(raw.strip(), region)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(num):
        return None
    return phonenumbers.format_number(num, phonenumbers.PhoneNumberFormat.E164)


def order_id(redemption: Redemption) -> str:
    return f"r{redemption.id}"


async def catalogue() -> list[Reward]:
    return list(await Reward.filter(active=True, stock__gt=0).order_by("cost", "id"))


async def verified_phone(member_id: int) -> str | None:
    """The member's own number, proven by a one-time code; None until they have bound one."""
    member = await Member.get_or_none(id=member_id)
    if member is None or member.phone_verified_at is None or not member.phone:
        return None
    return member.phone


async def redeem(member_id: int, reward_id: int, *, request_key: str) -> Redemption:
    """Spend and order in one transaction; the same request_key returns the first order."""
    existing = await Redemption.get_or_none(request_key=request_key)
    if existing:
        return existing
    reward = await Reward.get_or_none(id=reward_id, active=True)
    if reward is None:
        raise RedeemError("unavailable")
    phone = await verified_phone(member_id)
    if phone is None:
        raise RedeemError("unverified")
    if (await ledger.balance_of(member_id)).balance < reward.cost:
        raise RedeemError("insufficient")
    created: list[Redemption] = []

    async def hook(conn: BaseDBAsyncClient, entry: LedgerEntry) -> None:
        taken = await Redemption.filter(member_id=member_id, reward_id=reward.id).exclude(status="failed").using_db(conn).count()
        if taken >= reward.per_member_limit:
            raise RedeemError("limit")
        if not await Reward.filter(id=reward.id, active=True, stock__gt=0).using_db(conn).update(stock=F("stock") - 1):
            raise RedeemError("out_of_stock")
        created.append(await Redemption.create(
            using_db=conn, member_id=member_id, reward_id=reward.id, cost=reward.cost, request_key=request_key,
            spend_entry_id=entry.id, phone=phone if reward.kind in ("topup", "data") else "", status="queued" if reward.kind == "gift" else "pending",
        ))

    try:
        result = await ledger.spend(member_id, reward.cost, key=ledger.key_of("redeem", request_key),
                                    ref=f"reward:{reward.id}", reason=reward.name[:128], hook=hook)
    except ledger.InsufficientPoints as exc:
        raise RedeemError("insufficient") from exc
    if result.duplicate or not created:
        return await Redemption.get(request_key=request_key)
    return created[0]


async def fulfil(redemption: Redemption, provider: TopupProvider | None, callback_url: str) -> Redemption:
    """Send a pending top-up to the provider; without one it joins the manual queue."""
    if redemption.status != "pending":
        return redemption
    reward = await Reward.get(id=redemption.reward_id)
    if provider is None:
        await Redemption.filter(id=redemption.id, status="pending").update(status="queued")
        return await Redemption.get(id=redemption.id)
    order = TopupOrder(order_id(redemption), redemption.phone, reward.face_value,
                       "data" if reward.kind == "data" else "credit", callback_url)
    try:
        ref = await provider.submit(order)
    except TopupError as err:
        if err.permanent:
            await fail(redemption.id, err.reason)
        else:
            await Redemption.filter(id=redemption.id, status="pending").update(note=err.reason[:500])
        return await Redemption.get(id=redemption.id)
    await Redemption.filter(id=redemption.id, status="pending").update(status="submitted", provider_ref=ref)
    return await Redemption.get(id=redemption.id)


async def retry_pending(provider: TopupProvider | None, callback_url: str, limit: int = 50) -> int:
    """Resubmit top-ups a transient error left pending (the provider dedups by order id)."""
    rows = await Redemption.filter(status="pending").order_by("id").limit(limit)
    for r in rows:
        await fulfil(r, provider, callback_url)
    return len(rows)


async def complete(redemption_id: int, provider_ref: str = "") -> bool:
    """Mark fulfilled once; False if it was already settled."""
    values: dict[str, object] = {"status": "fulfilled"}
    if provider_ref:
        values["provider_ref"] = provider_ref[:128]
    return bool(await Redemption.filter(id=redemption_id, status__in=OPEN).update(**values))


async def fail(redemption_id: int, reason: str) -> bool:
    """Mark failed and refund through the ledger, once; False if it was already settled."""
    if not await Redemption.filter(id=redemption_id, status__in=OPEN).update(status="failed", note=reason[:500]):
        return False
    r = await Redemption.get(id=redemption_id)
    if r.spend_entry_id:
        await ledger.reverse(r.spend_entry_id, reason="refund: fulfilment failed", key=ledger.key_of("refund", r.id))
    await Reward.filter(id=r.reward_id).update(stock=F("stock") + 1)
    return True
