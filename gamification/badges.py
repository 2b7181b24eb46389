"""Badges and titles, granted by re-runnable rules.

Each rule is a metric and a threshold; :func:`evaluate` grants every badge whose rule
holds under the award key ``badge:<code>:<member>`` (UNIQUE), so re-running it never
duplicates a badge or its notification (the outbox key is the award key too).
"""
from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta

from tortoise.exceptions import IntegrityError

from bot.i18n import N_
from bot.models import AnswerFeedback
from gamification.credibility import credibility_of
from gamification.models import Balance, ForwardEngagement, LedgerEntry, MemberBadge
from gamification.rules import Rules


@dataclass(frozen=True)
class Badge:
    code: str
    name: str  # msgid
    metric: str
    threshold: int
    title: str | None = None  # msgid shown beside the name; later badges outrank earlier ones


BADGES: tuple[Badge, ...] = (
    Badge("first_accept", N_("First accepted answer"), "accepted", 1),
    Badge("accept_10", N_("10 accepted answers"), "accepted", 10, N_("Helper")),
    Badge("accept_50", N_("50 accepted answers"), "accepted", 50, N_("Senior helper")),
    Badge("accept_200", N_("200 accepted answers"), "accepted", 200, N_("Community pillar")),
    Badge("reach_25", N_("Reached 25 people"), "reached", 25, N_("Messenger")),
    Badge("reach_300", N_("Reached 300 people"), "reached", 300, N_("Broadcaster")),
    Badge("reach_1000", N_("Reached 1000 people"), "reached", 1000, N_("Knowledge ambassador")),
    Badge("credible", N_("Credible forwarder"), "credible", 1, N_("Credible forwarder")),
    Badge("streak_7", N_("7-day self-service streak"), "streak", 7),
    Badge("expert_bronze", N_("Self-service expert · bronze"), "lifetime", 100, N_("Self-service expert · bronze")),
    Badge("expert_silver", N_("Self-service expert · silver"), "lifetime", 500, N_("Self-service expert · silver")),
    Badge("expert_gold", N_("Self-service expert · gold"), "lifetime", 2000, N_("Self-service expert · gold")),
)
BY_CODE = {b.code: b for b in BADGES}
# the title shown is the highest-ranked held badge with a title, in this order
TITLE_ORDER = [b.code for b in reversed(BADGES) if b.title]


def award_key(code: str, member_id: int) -> str:
    return f"badge:{code}:{member_id}"


async def accepted_count(member_id: int) -> int:
    given = await LedgerEntry.filter(member_id=member_id, event="answer_accepted").count()
    taken = await LedgerEntry.filter(member_id=member_id, event="reversal", reversal_of__event="answer_accepted").count()
    return given - taken


async def reached_count(member_id: int) -> int:
    """Distinct people who engaged with this member's forwards."""
    rows = await ForwardEngagement.filter(link__sharer_id=member_id).distinct().values_list("recipient_key", flat=True)
    return len(set(rows))


def streak_days(days: set[date], today: date) -> int:
    """Consecutive days ending today (or yesterday) present in ``days``."""
    day = today if today in days else today - timedelta(days=1)
    n = 0
    while day in days:
        n += 1
        day -= timedelta(days=1)
    return n


async def self_service_streak(member_id: int, today: date) -> int:
    stamps = await AnswerFeedback.filter(
        member_id=member_id, helpful=True, created_at__gte=today - timedelta(days=400)
    ).values_list("created_at", flat=True)
    return streak_days({s.date() for s in stamps}, today)


async def metrics(rules: Rules, member_id: int, today: date) -> dict[str, int]:
    bal = await Balance.get_or_none(member_id=member_id)
    cred = await credibility_of(rules, member_id)
    return {
        "accepted": await accepted_count(member_id),
        "reached": await reached_count(member_id),
        "credible": 1 if cred.level == "credible" else 0,
        "streak": await self_service_streak(member_id, today),
        "lifetime": bal.lifetime if bal else 0,
    }


Notify = Callable[[int, Badge], Awaitable[None]]


async def evaluate(rules: Rules, member_id: int, today: date, notify: Notify | None = None) -> list[Badge]:
    """Grant every badge the member now qualifies for; returns the new ones."""
    values = await metrics(rules, member_id, today)
    held = set(await MemberBadge.filter(member_id=member_id).values_list("code", flat=True))
    new: list[Badge] = []
    for badge in BADGES:
        if badge.code in held or values.get(badge.metric, 0) < badge.threshold:
            continue
        try:
            await MemberBadge.create(member_id=member_id, code=badge.code, award_key=award_key(badge.code, member_id))
        except IntegrityError:
            continue  # granted concurrently
        new.append(badge)
        if notify:
            await notify(member_id, badge)
    return new


async def next_badge(rules: Rules, member_id: int, today: date) -> tuple[Badge, int] | None:
    """The closest badge not yet held, with the member's current progress."""
    values = await metrics(rules, member_id, today)
    held = set(await MemberBadge.filter(member_id=member_id).values_list("code", flat=True))
    best: tuple[float, Badge, int] | None = None
    for badge in BADGES:
        if badge.code in held or badge.metric == "credible":
            continue
        have = values.get(badge.metric, 0)
        share = have / badge.threshold
        if best is None or share > best[0]:
            best = (share, badge, have)
    return (best[1], best[2]) if best else None


async def titles(member_ids: list[int]) -> dict[int, str]:
    """Title msgid per member (the best title badge held)."""
    rows = await MemberBadge.filter(member_id__in=member_ids, code__in=TITLE_ORDER).values_list("member_id", "code")
    out: dict[int, str] = {}
    rank = {c: i for i, c in enumerate(TITLE_ORDER)}
    best: dict[int, str] = {}
    for mid, code in rows:
        if mid not in best or rank[code] < rank[best[mid]]:
            best[mid] = code
    for mid, code in best.items():
        out[mid] = BY_CODE[code].title or ""
    return out
