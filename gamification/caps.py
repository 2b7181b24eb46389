"""Caps and anti-gaming, applied while the member's balance row is locked.

- daily cap per member in points (events marked exempt do not count; held points do),
- per-hour and per-day counts per event, and per pair (the same asker or voter) per week,
- per-item and per-recipient caps for forwards, per-network caps for web opens,
- pending: points earned through the action of a not-yet-trusted member are held until
  ``hold_until`` (at most ``trust.hold.daily_cap`` of them a day),
- ring detection: A and B repeatedly rewarding each other (forwards, accepted answers) holds
  the award and opens one review item; longer rings and farms are found by
  :mod:`gamification.graph` before the award and arrive here as ``suspect``; a member with an
  open flag earns into ``held`` until cleared.
"""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q
from tortoise.functions import Sum

from gamification.ledger import Grant, Policy
from gamification.models import ForwardEngagement, LedgerEntry, ReviewFlag
from gamification.rules import Rules

RING_EVENTS = ("forward_engaged", "answer_accepted")


def day_start(now: datetime) -> datetime:
    return now.astimezone(timezone.utc).replace(hour=0, minute=0, second=0, microsecond=0)


# flags that hold points; a poor-credibility flag only asks for review (the multiplier already cuts)
HOLD_REASONS = ("ring", "farm", "moderation")


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


def ring_key(members: list[int]) -> str:
    """One review item per ring, whichever member's award closed it."""
    return "ring:" + ":".join(str(m) for m in sorted(set(members)))


async def ring_detected(conn: BaseDBAsyncClient, rules: Rules, a: int, b: int, now: datetime) -> bool:
    """Whether a→b (counting the award in hand) and b→a both reach the threshold."""
    since = now - timedelta(days=rules.ring_window_days)
    base = LedgerEntry.filter(event__in=RING_EVENTS, created_at__gte=since, reversal_of_id=None).using_db(conn)
    ab = await base.filter(member_id=a, counterpart_id=b).count() + 1
    if ab < rules.ring_min_each_way:
        return False
    ba = await base.filter(member_id=b, counterpart_id=a).count()
    return ba >= rules.ring_min_each_way


PAID = Q(granted__gt=0) | Q(held__gt=0)


async def _sum(q: object, column: str) -> int:
    rows = await q.annotate(total=Sum(column)).values_list("total", flat=True)  # type: ignore[attr-defined]
    return int(rows[0] or 0) if rows else 0


def policy_for(
    rules: Rules,
    member_id: int,
    event: str,
    *,
    counterpart_id: int | None = None,
    item_id: int | None = None,
    now: datetime | None = None,
    hold_until: datetime | None = None,
    suspect: str = "",
) -> Policy:
    """The cap policy for one award; runs inside the ledger transaction.

    ``hold_until``: the award comes through the action of a not-yet-trusted member, so it is
    pending until then; ``suspect``: a ring or farm found before the award ("ring", "farm"):
    the award is held for the review item the caller opens."""
    rule = rules.event(event)
    exempt = bool(rule and rule.exempt_from_daily_cap)

    async def policy(conn: BaseDBAsyncClient, delta: int) -> Grant:
        at = now or datetime.now(timezone.utc)
        today = day_start(at)
        mine = LedgerEntry.filter(member_id=member_id).using_db(conn)
        paid = mine.filter(PAID, event=event, reversal_of_id=None)
        if rule and rule.hourly_limit is not None:
            recent = await mine.filter(event=event, created_at__gte=at - timedelta(hours=1)).count()
            if recent >= rule.hourly_limit:
                return Grant(0, note="hourly limit")
        if (
            rule
            and rule.daily_limit is not None
            and await paid.filter(created_at__gte=today).count() >= rule.daily_limit
        ):
            return Grant(0, note="daily limit")
        if (
            rule
            and rule.pair_weekly_limit is not None
            and counterpart_id is not None
            and await paid.filter(counterpart_id=counterpart_id, created_at__gte=at - timedelta(days=7)).count()
            >= rule.pair_weekly_limit
        ):
            return Grant(0, note="pair limit")
        if event == "forward_engaged":
            fpaid = mine.filter(PAID, event=event, reversal_of_id=None)
            if item_id is not None and await fpaid.filter(item_id=item_id).count() >= rules.per_item_cap:
                return Grant(0, note="per-item cap")
            if (
                counterpart_id is not None
                and await fpaid.filter(counterpart_id=counterpart_id, created_at__gte=today).count()
                >= rules.per_recipient_daily_cap
            ):
                return Grant(0, note="per-recipient cap")
        amount, note = delta, ""
        if not exempt:
            day = mine.filter(exempt=False, earning=True, created_at__gte=today)
            used = await _sum(day, "granted") + await _sum(day, "held")
            if used + amount > rules.daily_cap:
                amount, note = max(0, rules.daily_cap - used), "daily cap"
        if hold_until is not None:
            used = await _sum(mine.filter(hold_until__not_isnull=True, created_at__gte=today), "held")
            if used + amount > rules.hold_daily_cap:
                amount, note = max(0, rules.hold_daily_cap - used), "pending cap"
        if amount <= 0:
            return Grant(0, note=note)
        if suspect:
            return Grant(0, held=amount, note=suspect, hold_until=hold_until)
        if (
            counterpart_id is not None
            and event in RING_EVENTS
            and await ring_detected(conn, rules, member_id, counterpart_id, at)
        ):
            # the review item is opened after the commit (service); this award is held already
            return Grant(0, held=amount, note="ring", hold_until=hold_until)
        if await has_open_flag(member_id, conn):
            return Grant(0, held=amount, note="held for review", hold_until=hold_until)
        if hold_until is not None:
            return Grant(0, held=amount, note="pending", hold_until=hold_until)
        return Grant(amount, note=note)

    return policy


async def network_allowed(rules: Rules, sharer_id: int, network: str, now: datetime | None = None) -> bool:
    """Web opens: one network may pay a sharer only a few times a day (device or cookie churn)."""
    if not network:
        return True
    at = now or datetime.now(timezone.utc)
    count = await ForwardEngagement.filter(
        link__sharer_id=sharer_id, network=network, paid=True, created_at__gte=day_start(at)
    ).count()
    return count < rules.per_network_daily_cap
