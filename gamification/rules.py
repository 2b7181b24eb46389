"""Scoring rules loaded from ``rules.yaml``: data, not code, so operators tune them."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

RULES_PATH = Path(__file__).with_name("rules.yaml")


@dataclass(frozen=True)
class EventRule:
    points: int
    exempt_from_daily_cap: bool = False
    hourly_limit: int | None = None
    daily_limit: int | None = None  # paid events per member per UTC day
    pair_weekly_limit: int | None = None  # paid events per member from one counterpart in 7 days


@dataclass(frozen=True)
class TrustLevel:
    """What a member needs for one trust level (every requirement must hold)."""

    level: int
    name: str
    verified_phone: bool = False
    account_age_days: int = 0
    messages: int = 0
    lifetime_points: int = 0
    no_open_flags: bool = False


BADGE_METRICS = frozenset({"accepted", "reached", "credible", "streak", "self_service"})


@dataclass(frozen=True)
class BadgeRule:
    """One badge: held while ``metric`` >= ``threshold`` (names are msgids in badges.py)."""

    code: str
    metric: str
    threshold: int
    title: bool = False


@dataclass(frozen=True)
class Rules:
    events: dict[str, EventRule]
    daily_cap: int
    difficulty_weights: dict[int, float]
    breadth_new: float
    breadth_repeat: float
    per_item_cap: int
    per_recipient_daily_cap: int
    per_network_daily_cap: int
    min_ratings: int
    credible_rate: float
    credible_multiplier: float
    poor_rate: float
    poor_multiplier: float
    ring_window_days: int
    ring_min_each_way: int
    expiry_days: int
    expiry_reminder_days: int
    ring_max_cycle: int = 4
    ring_min_step: int = 2
    farm_window_days: int = 14
    farm_min_accounts: int = 3
    trust_levels: tuple[TrustLevel, ...] = (TrustLevel(0, "new"),)
    trusted_level: int = 2
    hold_days: int = 7
    hold_daily_cap: int = 60
    weights: dict[str, dict[int, float]] = field(default_factory=dict)
    zf_per_destination_daily: int = 1
    zf_per_sender_daily: int = 5
    badges: tuple[BadgeRule, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)

    def event(self, name: str) -> EventRule | None:
        return self.events.get(name)

    def weight(self, action: str, level: int) -> float:
        """What one ``action`` of a member at ``level`` is worth: the entry for the highest
        level listed at or below it; 1.0 when the action has no weights."""
        table = self.weights.get(action)
        if not table:
            return 1.0
        below = [lv for lv in table if lv <= level]
        return table[max(below)] if below else 0.0

    def difficulty_weight(self, difficulty: int | None) -> float:
        if not self.difficulty_weights:
            return 1.0
        d = max(min(int(difficulty or 1), max(self.difficulty_weights)), min(self.difficulty_weights))
        return self.difficulty_weights.get(d, 1.0)

    def forward_points(self, difficulty: int | None, new_person: bool, credibility_multiplier: float = 1.0) -> int:
        """base × difficulty weight × breadth factor × credibility, rounded half up, at least 1."""
        rule = self.events.get("forward_engaged")
        if rule is None or rule.points <= 0:
            return 0
        breadth = self.breadth_new if new_person else self.breadth_repeat
        value = rule.points * self.difficulty_weight(difficulty) * breadth * credibility_multiplier
        return max(1, math.floor(value + 0.5))


def parse_rules(data: dict[str, Any]) -> Rules:
    """Validate a rules mapping (clear ValueError on a bad file, never a half-loaded one)."""
    try:
        events = {
            str(name): EventRule(
                points=int(spec["points"]),
                exempt_from_daily_cap=bool(spec.get("exempt_from_daily_cap", False)),
                hourly_limit=int(spec["hourly_limit"]) if spec.get("hourly_limit") is not None else None,
                daily_limit=int(spec["daily_limit"]) if spec.get("daily_limit") is not None else None,
                pair_weekly_limit=int(spec["pair_weekly_limit"]) if spec.get("pair_weekly_limit") is not None else None,
            )
            for name, spec in (data.get("events") or {}).items()
        }
        fwd = data.get("forward") or {}
        cred = data.get("credibility") or {}
        ring = data.get("ring") or {}
        exp = data.get("expiry") or {}
        farm = data.get("farm") or {}
        trust = data.get("trust") or {}
        hold = trust.get("hold") or {}
        zf = data.get("zf") or {}
        levels = tuple(
            sorted(
                (
                    TrustLevel(
                        level=int(lv),
                        name=str(spec.get("name", lv)),
                        verified_phone=bool(spec.get("verified_phone", False)),
                        account_age_days=int(spec.get("account_age_days", 0)),
                        messages=int(spec.get("messages", 0)),
                        lifetime_points=int(spec.get("lifetime_points", 0)),
                        no_open_flags=bool(spec.get("no_open_flags", False)),
                    )
                    for lv, spec in ((trust.get("levels") or {0: {"name": "new"}}).items())
                ),
                key=lambda t: t.level,
            )
        )
        weights = {
            str(action): {int(lv): float(w) for lv, w in (table or {}).items()}
            for action, table in (trust.get("weights") or {}).items()
        }
        badges = tuple(
            BadgeRule(
                code=str(code),
                metric=str(spec["metric"]),
                threshold=int(spec["threshold"]),
                title=bool(spec.get("title", False)),
            )
            for code, spec in (data.get("badges") or {}).items()
        )
        rules = Rules(
            events=events,
            daily_cap=int(data.get("daily_cap", 200)),
            difficulty_weights={int(k): float(v) for k, v in (fwd.get("difficulty_weights") or {}).items()},
            breadth_new=float((fwd.get("breadth") or {}).get("new_person", 1.0)),
            breadth_repeat=float((fwd.get("breadth") or {}).get("repeat_person", 1.0)),
            per_item_cap=int(fwd.get("per_item_cap", 20)),
            per_recipient_daily_cap=int(fwd.get("per_recipient_daily_cap", 3)),
            per_network_daily_cap=int(fwd.get("per_network_daily_cap", 3)),
            min_ratings=int(cred.get("min_ratings", 5)),
            credible_rate=float(cred.get("credible_rate", 0.9)),
            credible_multiplier=float(cred.get("credible_multiplier", 1.0)),
            poor_rate=float(cred.get("poor_rate", 0.5)),
            poor_multiplier=float(cred.get("poor_multiplier", 1.0)),
            ring_window_days=int(ring.get("window_days", 30)),
            ring_min_each_way=int(ring.get("min_each_way", 3)),
            expiry_days=int(exp.get("days", 365)),
            expiry_reminder_days=int(exp.get("reminder_days", 30)),
            ring_max_cycle=int(ring.get("max_cycle", 4)),
            ring_min_step=int(ring.get("min_step", 2)),
            farm_window_days=int(farm.get("window_days", 14)),
            farm_min_accounts=int(farm.get("min_accounts", 3)),
            trust_levels=levels,
            trusted_level=int(hold.get("trusted_level", 2)),
            hold_days=int(hold.get("days", 7)),
            hold_daily_cap=int(hold.get("daily_cap", 60)),
            weights=weights,
            zf_per_destination_daily=int(zf.get("per_destination_daily", 1)),
            zf_per_sender_daily=int(zf.get("per_sender_daily", 5)),
            badges=badges,
            raw=data,
        )
    except (KeyError, TypeError, ValueError, AttributeError) as exc:
        raise ValueError(f"invalid gamification rules: {exc}") from exc
    if any(r.points < 0 for r in rules.events.values()) or rules.daily_cap < 0:
        raise ValueError("invalid gamification rules: points and caps must not be negative")
    if not rules.trust_levels or rules.trust_levels[0].level != 0:
        raise ValueError("invalid gamification rules: trust levels must start at 0")
    if (
        rules.hold_days < 0
        or rules.hold_daily_cap < 0
        or rules.zf_per_destination_daily < 1
        or rules.zf_per_sender_daily < 1
    ):
        raise ValueError("invalid gamification rules: hold and ZF limits must not be negative")
    if any(w < 0 for table in rules.weights.values() for w in table.values()):
        raise ValueError("invalid gamification rules: trust weights must not be negative")
    for badge in rules.badges:
        if badge.metric not in BADGE_METRICS or badge.threshold < 1:
            raise ValueError(
                f"invalid gamification rules: badge {badge.code!r} needs a known metric "
                f"({', '.join(sorted(BADGE_METRICS))}) and a threshold of at least 1"
            )
    return rules


@lru_cache(maxsize=4)
def load_rules(path: str | None = None) -> Rules:
    with open(path or RULES_PATH, encoding="utf-8") as fh:
        return parse_rules(yaml.safe_load(fh) or {})
