"""Points for helpers, through gamification when that package provides its service.

Every call is guarded: if ``gamification.service`` (or the function) is missing, the
community still works and nothing is awarded. Event ids make the awards idempotent there.
"""

from __future__ import annotations

import importlib
import logging
from typing import Any

log = logging.getLogger(__name__)


def _service() -> Any | None:
    try:
        return importlib.import_module("gamification.service")
    except ImportError:
        return None


async def call_hook(name: str, **kwargs: Any) -> bool:
    """Call ``gamification.service.<name>(**kwargs)``; False when it is not there or failed."""
    svc = _service()
    fn = getattr(svc, name, None) if svc else None
    if fn is None:
        return False
    try:
        await fn(**kwargs)
    except Exception:  # a scoring problem must not undo the accept / vote
        log.exception("gamification %s failed (%s)", name, kwargs)
        return False
    return True


async def answer_accepted(answer_id: int, answerer_id: int, asker_id: int, question_id: int) -> bool:
    return await call_hook(
        "on_answer_accepted", answer_id=answer_id, answerer_id=answerer_id, asker_id=asker_id, question_id=question_id
    )


async def answer_helpful(answer_id: int, answerer_id: int, voter_id: int) -> bool:
    return await call_hook("on_answer_helpful", answer_id=answer_id, answerer_id=answerer_id, voter_id=voter_id)


async def member_profile(member_id: int) -> dict[str, Any]:
    """Points and titles for the agent's ticket view (empty when gamification is absent)."""
    svc = _service()
    for name in ("member_summary", "profile", "get_profile"):
        fn = getattr(svc, name, None) if svc else None
        if fn is not None:
            try:
                data = await fn(member_id)
            except Exception:
                log.exception("gamification %s failed", name)
                return {}
            if isinstance(data, dict):
                return data
            return {k: getattr(data, k) for k in ("points", "titles", "badges", "credibility") if hasattr(data, k)}
    return {}


async def answer_removed(answer_id: int) -> bool:
    """A reviewer rejected an answer: reverse whatever it earned."""
    return await call_hook("on_content_removed", ref=f"answer:{answer_id}", reason="moderation")
