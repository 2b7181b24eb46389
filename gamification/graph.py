"""Ring and farm detection over the award graph (who rewarded whom).

An edge ``X -> Y`` is an award Y earned through X's action (X accepted Y's answer, voted for
it, engaged with Y's forward), from the ledger's ``counterpart_id``. Before an award from
``giver`` to ``earner`` is written, :func:`inspect` looks for

- a **ring** longer than a pair: ``earner -> … -> giver`` already exists, so the new edge
  closes a cycle A->B->C(->D)->A whose every step was taken at least ``ring.min_step``
  times in the window (pairs are the ledger policy's ``min_each_way`` rule);
- a **farm**: at least ``farm.min_accounts`` distinct not-yet-trusted accounts that accepted
  or voted for this one earner and rewarded nobody else in the window.

Either holds the award and names one review item (:class:`Finding.key`): the whole ring or
the farmed member, never one item per award.
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from tortoise.queryset import QuerySet

from gamification import caps, trust
from gamification.models import LedgerEntry
from gamification.rules import Rules

GRAPH_EVENTS = ("answer_accepted", "answer_helpful", "forward_engaged")
# a farm is accounts that *choose* to reward one member; a forward's new recipients engage
# with their one sharer by nature (breadth is the point), so forwards are bounded by device,
# network and pending caps instead
FARM_EVENTS = ("answer_accepted", "answer_helpful")


@dataclass(frozen=True)
class Finding:
    reason: str  # ring | farm
    key: str  # the one review item for it
    members: list[int] = field(default_factory=list)


def _edges(since: datetime, events: tuple[str, ...] = GRAPH_EVENTS) -> QuerySet[LedgerEntry]:
    return LedgerEntry.filter(
        event__in=events, created_at__gte=since, reversal_of_id=None, counterpart_id__not_isnull=True
    )


async def find_cycle(rules: Rules, giver: int, earner: int, now: datetime) -> list[int] | None:
    """A path earner -> … -> giver of 2 to ``max_cycle - 1`` strong steps: with the new
    award giver -> earner it is a ring of 3 to ``max_cycle`` members (returned in order)."""
    since = now - timedelta(days=rules.ring_window_days)
    here = await _edges(since).filter(counterpart_id=giver, member_id=earner).count() + 1
    if here < rules.ring_min_step or rules.ring_max_cycle < 3:
        return None
    paths: list[list[int]] = [[earner]]
    for _depth in range(rules.ring_max_cycle - 1):
        frontier = {p[-1] for p in paths}
        rows = await _edges(since).filter(counterpart_id__in=list(frontier)).values_list("counterpart_id", "member_id")
        counts: dict[tuple[int, int], int] = defaultdict(int)
        for src, dst in rows:
            counts[(src, dst)] += 1
        strong: dict[int, list[int]] = defaultdict(list)
        for (src, dst), n in counts.items():
            if n >= rules.ring_min_step and src != dst:
                strong[src].append(dst)
        nxt: list[list[int]] = []
        for p in paths:
            for dst in sorted(strong.get(p[-1], [])):
                if dst == giver and len(p) >= 2:
                    return [giver, *p]
                if dst not in p and dst != giver:
                    nxt.append([*p, dst])
        paths = nxt[:500]  # bounded: a ring is short, an honest community is wide
        if not paths:
            return None
    return None


async def find_farm(rules: Rules, giver: int, earner: int, now: datetime) -> list[int] | None:
    """The not-yet-trusted accounts that rewarded only ``earner`` in the window, when there are
    enough of them (the new award's giver among them)."""
    since = now - timedelta(days=rules.farm_window_days)
    givers = {
        int(g)
        for g in await _edges(since, FARM_EVENTS)
        .filter(member_id=earner)  # type: ignore[call-overload]
        .values_list("counterpart_id", flat=True)
    }  # tortoise types a flat values_list as tuples
    givers.add(giver)
    elsewhere = {
        int(g)
        for g in await _edges(since)  # type: ignore[call-overload]
        .filter(counterpart_id__in=list(givers))
        .exclude(member_id=earner)
        .values_list("counterpart_id", flat=True)
    }  # tortoise types a flat values_list as tuples
    if giver in elsewhere:
        return None  # this giver rewards others too
    exclusive = sorted(givers - elsewhere)
    if len(exclusive) < rules.farm_min_accounts:
        return None
    new = [giver]  # the caller knows this giver is not trusted yet
    for g in exclusive:  # a popular helper has many: stop as soon as there are enough
        if len(new) >= rules.farm_min_accounts:
            break
        if g != giver and await trust.level_of(g, rules) < rules.trusted_level:
            new.append(g)
    return sorted(new) if len(new) >= rules.farm_min_accounts else None


async def inspect(
    rules: Rules, event: str, giver: int | None, earner: int, actor_level: int, now: datetime | None = None
) -> Finding | None:
    """Whether the award giver -> earner closes a ring or feeds a farm."""
    if giver is None or giver == earner or event not in GRAPH_EVENTS:
        return None
    at = now or datetime.now(timezone.utc)
    if (
        event in FARM_EVENTS
        and actor_level < rules.trusted_level
        and (farm := await find_farm(rules, giver, earner, at))
    ):
        return Finding("farm", f"farm:{earner}", farm)
    if cycle := await find_cycle(rules, giver, earner, at):
        return Finding("ring", caps.ring_key(cycle), cycle)
    return None
