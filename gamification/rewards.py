"""Rewards: catalogue, redemption and fulfilment.

Redeeming needs a verified phone (``Member.phone_verified_at``), and phone credit and data
go to that number only: a member never types where the value goes. It spends the
redeemable points at once (a ledger spend; pending points cannot be spent) and, in the same transaction,
checks the per-member limit, takes one from stock and writes the fulfilment order
(:class:`Redemption`). Top-ups and data packs then go to the top-up provider; gifts (and
top-ups when no provider is configured) wait in the staff's manual fulfilment queue.
A failed fulfilment refunds the points through the ledger (a reversal of the spend)
and puts the stock back — once, whichever of callback, retry, reconciliation or staff gets
there first (the refund's ledger key is ``refund:<redemption>``).

Transient submission failures are retried a bounded number of times with exponential backoff
(:class:`FulfilPolicy`), then the order fails and is refunded. An order the provider accepted
whose callback does not come within the timeout is settled by :func:`reconcile` from the
provider's own status: success completes it, failed or never received refunds it, and one
still processing (or a provider that cannot be asked) goes to the staff's manual queue rather
than being refunded while the credit may still arrive (never paid twice).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import phonenumbers
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.expressions import F, Q

from bot.core.models import Member
from bot.core.settings import Settings
from bot.core.clock import utcnow
from gamification import ledger
from gamification.models import LedgerEntry, Redemption, Reward
from gamification.topup import TopupError, TopupOrder, TopupProvider

log = logging.getLogger(__name__)

KINDS = ("topup", "data", "gift")
OPEN = ("pending", "submitted", "queued")
MAX_BACKOFF_SECONDS = 3600.0


@dataclass(frozen=True)
class FulfilPolicy:
    """Retries and timeout (settings ``BOT_TOPUP_MAX_ATTEMPTS``, ``BOT_TOPUP_RETRY_BASE_SECONDS``,
    ``BOT_TOPUP_ORDER_TIMEOUT_MINUTES``)."""

    max_attempts: int = 5
    retry_base_seconds: float = 60.0
    timeout_minutes: float = 60.0

    def backoff(self, attempts: int) -> timedelta:
        """Wait before the next submission after ``attempts`` transient failures."""
        return timedelta(seconds=min(self.retry_base_seconds * 2 ** max(attempts - 1, 0), MAX_BACKOFF_SECONDS))


DEFAULT_POLICY = FulfilPolicy()


def policy_from(settings: Settings) -> FulfilPolicy:
    return FulfilPolicy(
        max(1, settings.topup_max_attempts),
        max(0.0, settings.topup_retry_base_seconds),
        max(0.0, settings.topup_order_timeout_minutes),
    )


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
        taken = (
            await Redemption.filter(member_id=member_id, reward_id=reward.id)
            .exclude(status="failed")
            .using_db(conn)
            .count()
        )
        if taken >= reward.per_member_limit:
            raise RedeemError("limit")
        if not await Reward.filter(id=reward.id, active=True, stock__gt=0).using_db(conn).update(stock=F("stock") - 1):
            raise RedeemError("out_of_stock")
        created.append(
            await Redemption.create(
                using_db=conn,
                member_id=member_id,
                reward_id=reward.id,
                cost=reward.cost,
                request_key=request_key,
                spend_entry_id=entry.id,
                phone=phone if reward.kind in ("topup", "data") else "",
                status="queued" if reward.kind == "gift" else "pending",
            )
        )

    try:
        result = await ledger.spend(
            member_id,
            reward.cost,
            key=ledger.key_of("redeem", request_key),
            ref=f"reward:{reward.id}",
            reason=reward.name[:128],
            hook=hook,
        )
    except ledger.InsufficientPoints as exc:
        raise RedeemError("insufficient") from exc
    if result.duplicate or not created:
        return await Redemption.get(request_key=request_key)
    return created[0]


async def fulfil(
    redemption: Redemption,
    provider: TopupProvider | None,
    callback_url: str,
    policy: FulfilPolicy = DEFAULT_POLICY,
    now: datetime | None = None,
) -> Redemption:
    """Send a pending top-up to the provider; without one it joins the manual queue. A
    transient failure counts an attempt and waits out a backoff; the last one refunds."""
    if redemption.status != "pending":
        return redemption
    reward = await Reward.get(id=redemption.reward_id)
    if provider is None:
        await Redemption.filter(id=redemption.id, status="pending").update(status="queued")
        return await Redemption.get(id=redemption.id)
    order = TopupOrder(
        order_id(redemption),
        redemption.phone,
        reward.face_value,
        "data" if reward.kind == "data" else "credit",
        callback_url,
    )
    try:
        ref = await provider.submit(order)
    except TopupError as err:
        attempts = redemption.attempts + 1
        if err.permanent or attempts >= policy.max_attempts:
            await Redemption.filter(id=redemption.id, status="pending").update(attempts=attempts)
            reason = err.reason if err.permanent else f"gave up after {attempts} attempts: {err.reason}"
            await fail(redemption.id, reason)
        else:
            # conditional on the attempt count read: two overlapping retries count once
            await Redemption.filter(id=redemption.id, status="pending", attempts=redemption.attempts).update(
                attempts=attempts, next_attempt_at=(now or utcnow()) + policy.backoff(attempts), note=err.reason[:500]
            )
        return await Redemption.get(id=redemption.id)
    await Redemption.filter(id=redemption.id, status="pending").update(
        status="submitted", provider_ref=ref, submitted_at=utcnow(), next_attempt_at=None
    )
    return await Redemption.get(id=redemption.id)


async def retry_pending(
    provider: TopupProvider | None,
    callback_url: str,
    limit: int = 50,
    policy: FulfilPolicy = DEFAULT_POLICY,
    now: datetime | None = None,
) -> int:
    """Resubmit top-ups a transient error left pending once their backoff has passed (the
    provider dedups by order id, so a resubmission never orders twice)."""
    now = now or utcnow()
    rows = (
        await Redemption.filter(status="pending")
        .filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
        .order_by("id")
        .limit(limit)
    )
    for r in rows:
        await fulfil(r, provider, callback_url, policy, now)
    return len(rows)


@dataclass(frozen=True)
class Settled:
    """One open order as reconciliation found and left it."""

    redemption_id: int
    before: str
    after: str
    detail: str


async def reconcile(
    provider: TopupProvider | None,
    callback_url: str,
    policy: FulfilPolicy = DEFAULT_POLICY,
    now: datetime | None = None,
    *,
    limit: int = 500,
) -> list[Settled]:
    """Settle open provider orders against the provider: resubmit pending ones whose backoff
    passed, and ask about every submitted one (a lost callback completes at once); one past the
    timeout that the provider never received, or failed, is refunded; one still processing
    (or unanswerable) after the timeout goes to the manual queue. Idempotent."""
    now = now or utcnow()
    out: list[Settled] = []
    deadline = now - timedelta(minutes=policy.timeout_minutes)
    for r in await Redemption.filter(status="pending").order_by("id").limit(limit):
        if r.next_attempt_at is not None and r.next_attempt_at > now:
            out.append(Settled(r.id, "pending", "pending", f"retry after {r.next_attempt_at.isoformat()}"))
            continue
        after = await fulfil(r, provider, callback_url, policy, now)
        out.append(Settled(r.id, "pending", after.status, after.note[:120]))
    if provider is None:
        return out
    for r in await Redemption.filter(status="submitted").order_by("id").limit(limit):
        overdue = r.submitted_at is None or r.submitted_at <= deadline
        try:
            st = await provider.status(order_id(r))
        except TopupError as err:
            if overdue and await Redemption.filter(id=r.id, status="submitted").update(
                status="queued", note=f"timed out; provider status unavailable: {err.reason}"[:500]
            ):
                out.append(Settled(r.id, "submitted", "queued", err.reason[:120]))
            else:
                out.append(Settled(r.id, "submitted", "submitted", f"status unavailable: {err.reason}"[:120]))
            continue
        if st.status == "success":
            await complete(r.id, st.provider_ref)
            out.append(Settled(r.id, "submitted", "fulfilled", "provider: success"))
        elif st.status == "failed":
            await fail(r.id, f"provider: {st.reason}"[:500])
            out.append(Settled(r.id, "submitted", "failed", f"provider: {st.reason}"[:120]))
        elif not overdue:
            out.append(Settled(r.id, "submitted", "submitted", "waiting for the callback"))
        elif st.status is None:
            await fail(r.id, "timed out: the provider never received the order")
            out.append(Settled(r.id, "submitted", "failed", "unknown to the provider: refunded"))
        elif await Redemption.filter(id=r.id, status="submitted").update(
            status="queued", note="timed out: still processing at the provider; check before refunding"
        ):
            out.append(Settled(r.id, "submitted", "queued", "still processing after the timeout"))
    return out


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
