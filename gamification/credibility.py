"""Forwarder credibility from recipients' 准确/不准确 ratings, like Discourse's flag accuracy.

The accuracy rate only counts after ``min_ratings`` ratings; credible forwarders earn a
bonus multiplier, poor ones earn less and are flagged for review.
"""
from __future__ import annotations

from dataclasses import dataclass

from gamification.models import ForwardRating
from gamification.rules import Rules


@dataclass(frozen=True)
class Credibility:
    ratings: int
    accurate: int
    rate: float | None  # None until min_ratings
    multiplier: float
    level: str  # unrated | credible | normal | poor


def assess(rules: Rules, ratings: int, accurate: int) -> Credibility:
    """Pure: the multiplier for a rating count (tested with hypothesis)."""
    if ratings < rules.min_ratings or ratings <= 0:
        return Credibility(ratings, accurate, None, 1.0, "unrated")
    rate = accurate / ratings
    if rate >= rules.credible_rate:
        return Credibility(ratings, accurate, rate, rules.credible_multiplier, "credible")
    if rate < rules.poor_rate:
        return Credibility(ratings, accurate, rate, rules.poor_multiplier, "poor")
    return Credibility(ratings, accurate, rate, 1.0, "normal")


async def credibility_of(rules: Rules, member_id: int) -> Credibility:
    total = await ForwardRating.filter(sharer_id=member_id).count()
    accurate = await ForwardRating.filter(sharer_id=member_id, accurate=True).count() if total else 0
    return assess(rules, total, accurate)
