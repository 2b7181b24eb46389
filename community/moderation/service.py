"""Applying the watch list to member content, and the review decisions that follow.

Content owners (Q&A posts and answers here; contributions and forwards elsewhere) call
:func:`screen` before storing, then :func:`record` with the stored row's id. A module
that stores reviewable content registers a callback with :func:`on_review` so an
approve/reject reaches its row.
"""

from __future__ import annotations

import asyncio
import inspect
import logging
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from tortoise.expressions import F
from tortoise.transactions import in_transaction

from bot.core.messages import Reply
from community.moderation.matcher import PatternError, Rule, Verdict, WatchList, compile_rule
from community.moderation.models import ACTIONS, KINDS, MemberStanding, ModerationAudit, ReviewItem, WatchedWord
from community.review.queue import open_review

if TYPE_CHECKING:
    from bot.core.services import Services

log = logging.getLogger(__name__)

ReviewCallback = Callable[[int, bool], Awaitable[None]]
_review_callbacks: dict[str, ReviewCallback] = {}
_cache: dict[str, Any] = {"list": None, "at": 0.0}
CACHE_SECONDS = 30.0  # other workers pick up list changes within this
OFFLOAD_CHARS = 2_000  # longer texts are matched in a worker thread
MAX_SCREEN_CHARS = 50_000  # longer than any message the channels accept: held for a reviewer


def on_review(content_type: str, callback: ReviewCallback) -> None:
    """``callback(content_id, approved)`` runs when a reviewer decides on that content type."""
    _review_callbacks[content_type] = callback


def invalidate() -> None:
    _cache["list"] = None


async def watch_list() -> WatchList:
    if _cache["list"] is None or time.monotonic() - _cache["at"] > CACHE_SECONDS:
        rows = await WatchedWord.filter(active=True).order_by("id")
        _cache["list"] = WatchList([Rule(r.id, r.pattern, r.kind, r.action, r.replacement) for r in rows])
        _cache["at"] = time.monotonic()
    return _cache["list"]


async def screen(text: str) -> Verdict:
    """What the watch list says about ``text`` (nothing is stored).

    Matching is linear (RE2); a long text is still checked in a worker thread so the event
    loop never waits on it, and a text beyond any message's size goes to review unscanned."""
    if len(text) > MAX_SCREEN_CHARS:
        return Verdict("hold", text)
    watch = await watch_list()
    if len(text) > OFFLOAD_CHARS:
        return await asyncio.to_thread(watch.check, text)
    return watch.check(text)


async def audit(
    actor: str,
    action: str,
    *,
    content_type: str = "",
    content_id: int | None = None,
    member_id: int | None = None,
    **detail: Any,
) -> None:
    await ModerationAudit.create(
        actor=actor[:64],
        action=action[:32],
        content_type=content_type[:16],
        content_id=content_id,
        member_id=member_id,
        detail=detail,
    )


async def add_word(
    pattern: str, kind: str, action: str, *, replacement: str = "***", note: str = "", actor: str = "system"
) -> WatchedWord:
    """Validate and store a watched word; raises ValueError with a message for the form."""
    if kind not in KINDS or action not in ACTIONS:
        raise ValueError("unknown kind or action")
    compile_rule(Rule(0, pattern, kind, action, replacement))  # PatternError is a ValueError
    row = await WatchedWord.create(
        pattern=pattern.strip(),
        kind=kind,
        action=action,
        replacement=replacement[:64] or "***",
        note=note[:255],
        created_by=actor[:64],
    )
    await audit(
        actor, "word_add", content_type="word", content_id=row.id, pattern=row.pattern, kind=kind, word_action=action
    )
    invalidate()
    return row


async def remove_word(word_id: int, *, actor: str) -> bool:
    done = await WatchedWord.filter(id=word_id, active=True).update(active=False)
    if done:
        await audit(actor, "word_remove", content_type="word", content_id=word_id)
        invalidate()
    return bool(done)


async def record(
    services: "Services",
    verdict: Verdict,
    *,
    member_id: int | None,
    content_type: str,
    content_id: int | None,
    text: str,
) -> ReviewItem | None:
    """Audit a verdict that matched, queue held/flagged content and warn when asked."""
    if verdict.action == "allow":
        return None
    matched = [{"rule": h.rule_id, "pattern": h.pattern, "action": h.action} for h in verdict.hits]
    await audit(
        "system", verdict.action, content_type=content_type, content_id=content_id, member_id=member_id, matched=matched
    )
    item = None
    if verdict.action in ("hold", "flag", "warn"):
        item = await ReviewItem.create(
            content_type=content_type,
            content_id=content_id,
            member_id=member_id,
            text=text,
            action="hold" if verdict.action == "warn" else verdict.action,
            matched=matched,
        )
        await open_review("moderation_item", item, item.action, summary=text, created_by=member_id)
    if verdict.action == "warn" and member_id:
        await warn_member(services, member_id, content_type=content_type, content_id=content_id)
    return item


async def warn_member(services: "Services", member_id: int, *, content_type: str, content_id: int | None) -> int:
    """Send the caring warning; repeated warnings freeze forwarding points and lower credibility."""
    from bot.core.models import Member

    now = datetime.now(timezone.utc)
    await lift_if_clean(member_id, now)  # a warning after a clean period starts a new episode
    clean_until = now + timedelta(days=services.settings.moderation_freeze_clean_days)
    async with in_transaction():
        standing, _ = await MemberStanding.get_or_create(member_id=member_id)
        await MemberStanding.filter(id=standing.id).update(warnings=F("warnings") + 1, clean_until=clean_until)
        standing = await MemberStanding.get(id=standing.id)
    member = await Member.get_or_none(id=member_id)
    _ = services.translator.bind(member.locale if member else services.settings.default_locale)
    text = _(
        "A caring reminder: what you shared may contain unverified information. Rumours can hurt "
        "other customers, so please check official sources before passing things on. Thank you for "
        "helping keep our community trustworthy."
    )
    await services.outbox.to_member(
        member_id,
        Reply(text=text, kind="warning"),
        purpose="system",
        idempotency_key=f"warn:{content_type}:{content_id}:{member_id}",
    )
    freeze = standing.warnings >= services.settings.moderation_warn_freeze_after
    if freeze and not standing.forwarding_frozen:
        updated = await MemberStanding.filter(id=standing.id, forwarding_frozen=False).update(
            forwarding_frozen=True, frozen_at=datetime.now(timezone.utc)
        )
        if updated:
            await audit("system", "freeze_forwarding", member_id=member_id, warnings=standing.warnings)
    await _gamification_warning(member_id, standing.warnings, freeze, standing.episode)
    return standing.warnings


async def lift_if_clean(member_id: int, now: datetime | None = None) -> bool:
    """Lift the member's forwarding freeze once the clean period after their last warning
    has passed; the warning count restarts and a new episode begins. True when lifted."""
    now = now or datetime.now(timezone.utc)
    done = await MemberStanding.filter(member_id=member_id, forwarding_frozen=True, clean_until__lte=now).update(
        forwarding_frozen=False, warnings=0, episode=F("episode") + 1, frozen_at=None
    )
    if done:
        await audit("system", "unfreeze_forwarding", member_id=member_id)
    return bool(done)


async def lift_clean_freezes(now: datetime | None = None) -> int:
    """Every freeze whose clean period has passed (for a periodic sweep); how many lifted."""
    now = now or datetime.now(timezone.utc)
    ids = await MemberStanding.filter(forwarding_frozen=True, clean_until__lte=now).values_list("member_id", flat=True)
    return sum([await lift_if_clean(mid, now) for mid in ids])


async def _gamification_warning(member_id: int, warnings: int, frozen: bool, episode: int = 0) -> None:
    """Lower credibility through gamification when that package provides it. A hook that
    takes ``episode`` gets it: warnings after a lifted freeze are a new episode, so a review
    flag keyed by (member, episode) opens again after staff cleared the last one."""
    try:
        from gamification import service as gsvc  # type: ignore[attr-defined]
    except ImportError:
        return
    hook = getattr(gsvc, "on_moderation_warning", None)
    if hook is None:
        return
    kwargs: dict[str, Any] = {"member_id": member_id, "warnings": warnings, "freeze_forwarding": frozen}
    if "episode" in inspect.signature(hook).parameters:
        kwargs["episode"] = episode
    try:
        await hook(**kwargs)
    except Exception:  # a scoring problem must not lose the moderation record
        log.exception("gamification on_moderation_warning failed for member %s", member_id)


async def is_forwarding_frozen(member_id: int) -> bool:
    """For forwarding points: True after repeated caring warnings, until a clean period
    without a new warning has passed (``moderation_freeze_clean_days``)."""
    if not await MemberStanding.filter(member_id=member_id, forwarding_frozen=True).exists():
        return False
    return not await lift_if_clean(member_id)


async def decide(item_id: int, *, approve: bool, reason: str, reviewer: str) -> ReviewItem | None:
    """Approve or reject a pending item once; the owner's callback updates the content."""
    now = datetime.now(timezone.utc)
    status = "approved" if approve else "rejected"
    done = await ReviewItem.filter(id=item_id, status="pending").update(
        status=status, reason=reason[:500], reviewer=reviewer[:64], decided_at=now
    )
    if not done:
        return None
    item = await ReviewItem.get(id=item_id)
    if item.member_id is not None and item.action == "hold":
        # staff have dealt with this member's held content: later warnings are a new episode
        await MemberStanding.filter(member_id=item.member_id).update(episode=F("episode") + 1)
    await audit(
        f"staff:{reviewer}",
        status,
        content_type=item.content_type,
        content_id=item.content_id,
        member_id=item.member_id,
        reason=reason[:500],
        review_item=item.id,
    )
    callback = _review_callbacks.get(item.content_type)
    if callback and item.content_id is not None:
        await callback(item.content_id, approve)
    return item


__all__ = [
    "PatternError",
    "Verdict",
    "add_word",
    "audit",
    "decide",
    "is_forwarding_frozen",
    "lift_clean_freezes",
    "lift_if_clean",
    "on_review",
    "record",
    "remove_word",
    "screen",
    "warn_member",
]
