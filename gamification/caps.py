"""Caps and anti-gaming, applied while the member's balance row is locked.

- daily cap per member (events marked exempt, such as accepted answers, do not count),
- per-hour rate per event, per-item and per-recipient caps for forwards,
- ring detection: A and B repeatedly rewarding each other (forwards, accepted answers)
  flags both for review; a member with an open flag earns into ``held`` until cleared.
"""
from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.functions import Sum

from gamification.ledger import Grant, Policy
from gamification.models import ForwardEngagement, LedgerEntry, ReviewFlag
from gamification.rules import Rules

RING_EVENTS = ("forward_engaged", "answer_accepted")


def day_start(now: datetime) -> datetime:
    return now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


# flags that hold points; a poor-credibility flag only asks for review (the multiplier already cuts)
HOLD_REASONS = ("ring", "moderation")


async def has_open_flag(member_id: int, conn: BaseDBAsyncClient | None = None) -> bool:
    q = ReviewFlag.filter(member_id=member_id, status="open", reason__in=HOLD_REASONS)
    return await (q.using_db(conn) if conn else q).exists()


async def flag(member_id: int, reason: str, key: str, detail: dict[str, object]) -> bool:
    """Open a review flag once per key (outside any ledger transaction); True when new."""
    if await ReviewFlag.filter(key=key).exists():
        return False
    try:
        await ReviewFlag.create(member_id=member_id, reason=reason, key=key, detail=detail)
    except IntegrityError:
        return False
    return True


async def flag_ring(a: int, b: int) -> None:
    lo, hi = sorted((a, b))
    for m in (lo, hi):
        await flag(m, "ring", f"ring:{lo}:{hi}:{m}", {"with": hi if m == lo else lo})


async def ring_detected(conn: BaseDBAsyncClient, rules: Rules, a: int, b: int, now: datetime) -> bool:
    """Whether a→b (counting the award in hand) and b→a both reach the threshold."""
    since = now - timedelta(days=rules.ring_window_days)
    base = LedgerEntry.filter(event__in=RING_EVENTS, created_at__gte=since, reversal_of_id=None).using_db(conn)
    ab = await base.filter(member_id=a, counterpart_id=b).count() + 1
    if ab < rules.ring_min_each_way:
        return False
    ba = await base.filter(member_id=b, counterpart_id=a).count()
    return ba >= rules.ring_min_each_way


def policy_for(
    rules: Rules, member_id: int, event: str, *, counterpart_id: int | None = None, item_id: int | None = None,
    now: datetime | None = None,
) -> Policy:
    """The cap policy for one award; runs inside the ledger transaction."""
    rule = rules.event(event)
    exempt = bool(rule and rule.exempt_from_daily_cap)

    async def policy(conn: BaseDBAsyncClient, delta: int) -> Grant:
        at = now or datetime.now(timezone.utc)
        mine = LedgerEntry.filter(member_id=member_id).using_db(conn)
        if rule and rule.hourly_limit is not None:
            recent = await mine.filter(event=event, created_at__gte=at - timedelta(hours=1)).count()
            if recent >= rule.hourly_limit:
                return Grant(0, note="hourly limit")
        if event == "forward_engaged":
            paid = mine.filter(event=event, granted__gt=0, reversal_of_id=None)
            if item_id is not None and await paid.filter(item_id=item_id).count() >= rules.per_item_cap:
                return Grant(0, note="per-item cap")
            if counterpart_id is not None and await paid.filter(
                counterpart_id=counterpart_id, created_at__gte=day_start(at)
            ).count() >= rules.per_recipient_daily_cap:
                return Grant(0, note="per-recipient cap")
        amount, note = delta, ""
        if not exempt:
            totals = await mine.filter(exempt=False, earning=True, created_at__gte=day_start(at)).annotate(
                total=Sum("granted")
            ).values_list("total", flat=True)
            used = int(totals[0] or 0) if totals else 0
            if used + amount > rules.daily_cap:
                amount, note = max(0, rules.daily_cap - used), "daily cap"
        if counterpart_id is not None and event in RING_EVENTS and await ring_detected(
            conn, rules, member_id, counterpart_id, at
        ):
            # flags are written after the commit (flag_ring); this award is held already
            return Grant(0, held=amount, note="ring")
        if amount and await has_open_flag(member_id, conn):
            return Grant(0, held=amount, note="held for review")
        return Grant(amount, note=note)

    return policy


async def fingerprint_allowed(rules: Rules, sharer_id: int, fingerprint: str, now: datetime | None = None) -> bool:
    """Web opens: one network + browser may pay a sharer only a few times a day (cookie churn)."""
    if not fingerprint:
        return True
    at = now or datetime.now(timezone.utc)
    count = await ForwardEngagement.filter(
        link__sharer_id=sharer_id, fingerprint=fingerprint, paid=True, created_at__gte=day_start(at)
    ).count()
    return count < rules.per_fingerprint_daily_cap
