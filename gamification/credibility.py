"""Forwarder credibility from recipients' 准确/不准确 ratings, like Discourse's flag accuracy.

The accuracy rate only counts after ``min_ratings`` ratings; credible forwarders earn a
bonus multiplier, poor ones earn less and are flagged for review. Each rating counts by its
rater's trust weight (``ForwardRating.weight``): puppets and anonymous visitors count 0.
"""

from __future__ import annotations

from dataclasses import dataclass

from tortoise.functions import Sum

from gamification.models import ForwardRating
from gamification.rules import Rules


@dataclass(frozen=True)
class Credibility:
    ratings: float  # weighted
    accurate: float
    rate: float | None  # None until min_ratings
    multiplier: float
    level: str  # unrated | credible | normal | poor


def assess(rules: Rules, ratings: float, accurate: float) -> Credibility:
    """Pure: the multiplier for a rating count (tested with hypothesis)."""
    if ratings < rules.min_ratings or ratings <= 0:
        return Credibility(ratings, accurate, None, 1.0, "unrated")
    rate = accurate / ratings
    if rate >= rules.credible_rate:
        return Credibility(ratings, accurate, rate, rules.credible_multiplier, "credible")
    if rate < rules.poor_rate:
        return Credibility(ratings, accurate, rate, rules.poor_multiplier, "poor")
    return Credibility(ratings, accurate, rate, 1.0, "normal")


async def _weight(**filters: object) -> float:
    rows = await ForwardRating.filter(weight__gt=0, **filters).annotate(w=Sum("weight")).values_list("w", flat=True)
    return float(rows[0] or 0) if rows else 0.0  # type: ignore[arg-type]  # tortoise types a flat values_list as tuples


async def credibility_of(rules: Rules, member_id: int) -> Credibility:
    total = await _weight(sharer_id=member_id)
    accurate = await _weight(sharer_id=member_id, accurate=True) if total else 0.0
    return assess(rules, total, accurate)
