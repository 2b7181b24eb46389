"""Badges and titles: data in ``rules.yaml`` (``badges:``), granted and revoked by re-runnable rules.

Each badge is a metric and a threshold. :func:`reconcile` makes a member's held badges equal
the badges whose metric meets its threshold: it grants under the award key
``badge:<code>:<member>`` (UNIQUE, so re-running never duplicates a badge or its notification:
the outbox key is the award key too) and revokes what a reversal, a forfeit or an unmerge
took the member below, each change written to :class:`BadgeEvent` in the same transaction.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import date, timedelta

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from bot.core.i18n import N_
from bot.core.identity.models import MemberMerge
from bot.core.models import AnswerFeedback, Member
from gamification.credibility import credibility_of
from gamification.models import BadgeEvent, ForwardEngagement, LedgerEntry, MemberBadge
from gamification.rules import Rules

# names and titles are msgids here, keyed by the codes in rules.yaml (the locales tool extracts them)
NAMES: dict[str, str] = {
    "first_accept": N_("First accepted answer"),
    "accept_10": N_("10 accepted answers"),
    "accept_50": N_("50 accepted answers"),
    "accept_200": N_("200 accepted answers"),
    "reach_25": N_("Reached 25 people"),
    "reach_300": N_("Reached 300 people"),
    "reach_1000": N_("Reached 1000 people"),
    "credible": N_("Credible forwarder"),
    "streak_7": N_("7-day self-service streak"),
    "expert_bronze": N_("Self-service expert · bronze"),
    "expert_silver": N_("Self-service expert · silver"),
    "expert_gold": N_("Self-service expert · gold"),
}
TITLES: dict[str, str] = {
    "accept_10": N_("Helper"),
    "accept_50": N_("Senior helper"),
    "accept_200": N_("Community pillar"),
    "reach_25": N_("Messenger"),
    "reach_300": N_("Broadcaster"),
    "reach_1000": N_("Knowledge ambassador"),
    "credible": N_("Credible forwarder"),
    "expert_bronze": N_("Self-service expert · bronze"),
    "expert_silver": N_("Self-service expert · silver"),
    "expert_gold": N_("Self-service expert · gold"),
}


@dataclass(frozen=True)
class Badge:
    code: str
    name: str  # msgid
    metric: str
    threshold: int
    title: str | None = None  # msgid shown beside the name; later badges outrank earlier ones


def badges_of(rules: Rules) -> tuple[Badge, ...]:
    """The rules' badges with their msgids; a code without a name is a clear error."""
    out = []
    for rule in rules.badges:
        if rule.code not in NAMES:
            raise ValueError(f"badge {rule.code!r} in rules.yaml has no name in gamification/badges.py")
        out.append(
            Badge(
                rule.code,
                NAMES[rule.code],
                rule.metric,
                rule.threshold,
                (TITLES.get(rule.code) or NAMES[rule.code]) if rule.title else None,
            )
        )
    return tuple(out)


def _default_badges() -> tuple[Badge, ...]:
    from gamification.rules import load_rules

    return badges_of(load_rules())


BADGES: tuple[Badge, ...] = _default_badges()
BY_CODE = {b.code: b for b in BADGES}
# the title shown is the highest-ranked held badge with a title, in this order
TITLE_ORDER = [b.code for b in reversed(BADGES) if b.title]


def due(badges: tuple[Badge, ...], values: dict[str, int]) -> set[str]:
    """Codes whose metric meets the threshold: what a member should hold."""
    return {b.code for b in badges if values.get(b.metric, 0) >= b.threshold}


def award_key(code: str, member_id: int) -> str:
    return f"badge:{code}:{member_id}"


async def identity_ids(member_id: int) -> list[int]:
    """The member and every member merged into it (their ledger history stays on their ids)."""
    ids, frontier = [member_id], [member_id]
    while frontier:
        frontier = [
            s
            for s in await MemberMerge.filter(target_id__in=frontier, status="merged").values_list(  # type: ignore[misc]
                "source_id", flat=True
            )
            if s not in ids
        ]  # type: ignore[comparison-overlap]
        ids.extend(frontier)
    return ids


async def accepted_count(member_id: int | list[int]) -> int:
    ids = member_id if isinstance(member_id, list) else [member_id]
    given = await LedgerEntry.filter(member_id__in=ids, event="answer_accepted").count()
    taken = await LedgerEntry.filter(member_id__in=ids, event="reversal", reversal_of__event="answer_accepted").count()
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


def longest_streak(days: set[date]) -> int:
    """The longest run of consecutive days in ``days`` (an achieved streak stays achieved)."""
    best = 0
    for day in days:
        if day - timedelta(days=1) in days:
            continue
        n = 1
        while day + timedelta(days=n) in days:
            n += 1
        best = max(best, n)
    return best


async def helped_days(member_id: int, since: date | None = None) -> set[date]:
    """UTC days on which a knowledge-base answer helped the member (their 👍): one a day, so
    tapping 👍 a thousand times is worth no more than using the service that day."""
    q = AnswerFeedback.filter(member_id=member_id, helpful=True)
    if since is not None:
        q = q.filter(created_at__gte=since)
    # tortoise types a flat values_list as tuples
    return {s.date() for s in await q.values_list("created_at", flat=True)}  # type: ignore[attr-defined]


async def self_service_streak(member_id: int, today: date) -> int:
    return streak_days(await helped_days(member_id, today - timedelta(days=400)), today)


async def metrics(rules: Rules, member_id: int, today: date) -> dict[str, int]:
    """Every badge metric for one member (merged-in members' ledger history included)."""
    ids = await identity_ids(member_id)
    cred = await credibility_of(rules, member_id)
    days = await helped_days(member_id)
    accepted = await accepted_count(ids)
    return {
        "accepted": accepted,
        "reached": await reached_count(member_id),
        "credible": 1 if cred.level == "credible" else 0,
        "streak": longest_streak(days),
        "self_service": len(days) + accepted,
    }


Notify = Callable[[int, Badge], Awaitable[None]]


@dataclass(frozen=True)
class Outcome:
    granted: list[Badge]
    revoked: list[Badge]


async def reconcile(
    rules: Rules, member_id: int, today: date, notify: Notify | None = None, *, reason: str = ""
) -> Outcome:
    """Make the member's badges equal what is due: grant new ones (notified once), revoke
    the ones whose metric fell below the threshold, each change audited in BadgeEvent.
    A member merged into another holds nothing of their own (the target holds it)."""
    member = await Member.get_or_none(id=member_id)
    if member is None:
        return Outcome([], [])
    defs = badges_of(rules)
    values = await metrics(rules, member_id, today) if member.status != "merged" else {}
    should = due(defs, values)
    held = {b.code: b.id for b in await MemberBadge.filter(member_id=member_id)}
    granted: list[Badge] = []
    revoked: list[Badge] = []
    for badge in defs:
        value = values.get(badge.metric, 0)
        if badge.code in should and badge.code not in held:
            try:
                async with in_transaction() as conn:
                    await MemberBadge.create(
                        member_id=member_id, code=badge.code, award_key=award_key(badge.code, member_id), using_db=conn
                    )
                    await BadgeEvent.create(
                        member_id=member_id,
                        code=badge.code,
                        action="grant",
                        value=value,
                        threshold=badge.threshold,
                        reason=reason[:128],
                        using_db=conn,
                    )
            except IntegrityError:
                continue  # granted concurrently
            granted.append(badge)
            if notify:
                await notify(member_id, badge)
        elif badge.code not in should and badge.code in held:
            async with in_transaction() as conn:
                if not await MemberBadge.filter(id=held[badge.code]).using_db(conn).delete():
                    continue  # revoked concurrently
                await BadgeEvent.create(
                    member_id=member_id,
                    code=badge.code,
                    action="revoke",
                    value=value,
                    threshold=badge.threshold,
                    reason=reason[:128],
                    using_db=conn,
                )
            revoked.append(badge)
    return Outcome(granted, revoked)


async def evaluate(
    rules: Rules, member_id: int, today: date, notify: Notify | None = None, reason: str = ""
) -> list[Badge]:
    """Reconcile the member's badges; returns the new ones (callers that only add)."""
    return (await reconcile(rules, member_id, today, notify, reason=reason)).granted


async def rerun(rules: Rules, today: date, *, batch: int = 500, notify: Notify | None = None) -> tuple[int, int]:
    """Reconcile every member, in id order and batches; idempotent. Returns (granted, revoked)."""
    granted = revoked = 0
    last = 0
    while True:
        # tortoise types a flat values_list as tuples
        ids: list[int] = (
            await Member.filter(  # type: ignore[assignment]
                id__gt=last
            )
            .order_by("id")
            .limit(batch)
            .values_list("id", flat=True)
        )
        if not ids:
            return granted, revoked
        last = ids[-1]
        for mid in ids:
            out = await reconcile(rules, mid, today, notify, reason="rerun")
            granted += len(out.granted)
            revoked += len(out.revoked)


async def next_badge(rules: Rules, member_id: int, today: date) -> tuple[Badge, int] | None:
    """The closest badge not yet held, with the member's current progress."""
    values = await metrics(rules, member_id, today)
    held: set[str] = set(
        await MemberBadge.filter(member_id=member_id).values_list(  # type: ignore[arg-type]
            "code", flat=True
        )
    )  # tortoise types a flat values_list as tuples
    best: tuple[float, Badge, int] | None = None
    for badge in badges_of(rules):
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
