"""A :class:`gamification.service.Gamification` for tests that run without the app.

Tests on the running app use the app's own instance instead (the ``gam`` fixture:
``client.app[GAMIFICATION]``): its board, notices and top-up provider are the app's."""

from __future__ import annotations

from typing import Any

from gamification.leaderboard import Leaderboard, SqlLeaderboard
from gamification.rules import Rules, load_rules
from gamification.service import Gamification


def standalone(rules: Rules | None = None, board: Leaderboard | None = None, **collaborators: Any) -> Gamification:
    """rules.yaml (or ``rules``), the SQL board (or ``board``), nobody told, no top-up provider,
    no community facts (unless given as keywords): what a CLI command builds."""
    return Gamification(rules or load_rules(), board or SqlLeaderboard(), **collaborators)
