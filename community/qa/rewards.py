"""The helper's standing for the agent's ticket view, from the app's gamification service.

Points themselves are not called from here any more: Q&A publishes ``AnswerAccepted``,
``AnswerHelpful`` and ``AnswerRemoved`` (bot.core.events) and gamification scores them in its
subscriber, wired in ``bot/subscriptions.py``.
"""

from __future__ import annotations

import logging
from typing import Any

from gamification.service import Gamification

log = logging.getLogger(__name__)


async def member_profile(gamification: Gamification, member_id: int) -> dict[str, Any]:
    """Points, titles, badges and credibility; empty when gamification fails (the ticket view
    still opens)."""
    try:
        return await gamification.member_summary(member_id)
    except Exception:  # a scoring problem must not keep the agent from the ticket
        log.exception("gamification member_summary failed for member %s", member_id)
        return {}
