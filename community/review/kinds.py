"""The five kinds behind the review queue, as one table: who may decide, what approving or
rejecting calls in the kind's own package, and how to tell whether its target still waits.

Each kind's logic stays where it was (moderation's ``decide``, the knowledge workflow's
``approve``/``reject``, learning's ``accept``/``reject``, rewards' ``complete``/``fail``);
the functions here only adapt the call.

Community's kinds open their reviews where the row is made (``queue.open_review``).
Gamification never imports community (docs/architecture.md: it hears about community through
events), so its two kinds are *discovered*: ``discover`` lists open flags and manually queued
orders that have no pending review yet, and the queue opens them before it is read. A staff
page that decides a target with no review yet (old rows, an undiscovered flag) opens it from
the kind's ``opening`` first (``service.decide_target``).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from tortoise.models import Model

from bot.core.i18n import N_
from bot.staff.models import StaffUser
from community.knowledge_admin import learning
from community.knowledge_admin import service as knowledge
from community.knowledge_admin.models import CandidateVariant, KnowledgeContribution, KnowledgeVersion
from community.moderation import service as moderation
from community.moderation.models import ReviewItem
from community.review.models import Kind
from gamification import rewards
from gamification.models import Redemption, ReviewFlag
from gamification.service import Gamification


class TargetRefused(ValueError):
    """The kind's own code refused the decision; ``msgid`` (marked ``N_``) says why to staff."""

    def __init__(self, msgid: str, **params: Any) -> None:
        super().__init__(msgid % params if params else msgid)
        self.msgid = msgid
        self.params = params


@dataclass(frozen=True)
class Decision:
    """One staff decision on one target, as the kind's adapter receives it."""

    target_id: int
    approve: bool
    staff: StaffUser
    note: str
    services: Any  # bot.services.Services: the knowledge service for re-indexing (None in jobs without it)
    gamification: Gamification | None = None  # the app's: a points review pays out or forfeits through it


@dataclass(frozen=True)
class Opening:
    """A target found waiting without a review, and what its review should say."""

    target: Model
    reason: str
    summary: str
    created_by: int | None
    since: datetime | None  # when the target started waiting


@dataclass(frozen=True)
class KindHandler:
    """What the queue needs from a kind. ``decide`` returns False when the target was
    already settled elsewhere (nothing changed); ``opening`` says what the review of a
    target row (of ``model``) should say, or None when the target no longer waits; ``pages``
    the staff page of each target.

    ``waiting`` (the ids of ``ids`` whose targets still wait) only for the kinds whose targets
    something other than staff settles: the queue closes their reviews when it is read
    (``service.settle_stale``). Staff decide every kind through ``service.decide``, whichever
    page they use, so the other kinds need no such reconciliation."""

    decide: Callable[[Decision], Awaitable[bool]]
    model: type[Model]
    opening: Callable[[Any], Awaitable[Opening | None]]
    pages: Callable[[list[int]], Awaitable[dict[int, str]]]
    roles: tuple[str, ...]
    approve_label: str
    reject_label: str
    reject_needs_note: bool = False
    discover: Callable[[set[int]], Awaitable[list[Opening]]] | None = None  # targets not in the set
    waiting: Callable[[list[int]], Awaitable[set[int]]] | None = None  # settled outside staff pages


DISCOVER_LIMIT = 500  # per kind and pass; the next read opens the rest


def _member_of(row: Model) -> int:
    """The ``member_id`` column tortoise adds for a ``member`` foreign key."""
    return int(getattr(row, "member_id"))


def _ids(rows: list[Any]) -> set[int]:
    return {int(x) for x in rows}


def _same_page(path: str) -> Callable[[list[int]], Awaitable[dict[int, str]]]:
    async def pages(ids: list[int]) -> dict[int, str]:
        return {i: path for i in ids}

    return pages


# --- held or flagged content (community.moderation) --------------------------------------------
async def _moderation_item(d: Decision) -> bool:
    item = await moderation.decide(d.target_id, approve=d.approve, reason=d.note, reviewer=d.staff.username)
    return item is not None


async def _moderation_opening(item: ReviewItem) -> Opening | None:
    """As ``moderation.record`` opens it."""
    if item.status != "pending":
        return None
    return Opening(item, item.action, item.text, item.member_id, item.created_at)


# --- members held for a points review (gamification) ------------------------------------------
async def _flag(d: Decision) -> bool:
    """Clearing pays out what the flag held; confirming a ring or farm forfeits it (as
    ``/admin/rewards`` does)."""
    points = d.gamification
    if points is None:
        raise TargetRefused(N_("Deciding a points review needs the running gamification service."))
    status = "cleared" if d.approve else "confirmed"
    flag = await ReviewFlag.get_or_none(id=d.target_id, status="open")
    if flag is None or not await ReviewFlag.filter(id=flag.id, status="open").update(status=status):
        return False
    if d.approve:
        await points.release_held(_member_of(flag))
    elif flag.reason in ("ring", "farm"):
        await points.forfeit_held(_member_of(flag), reason=f"{flag.reason} confirmed by staff")
    return True


def _flag_open(f: ReviewFlag) -> Opening:
    return Opening(f, f.reason, f.key, _member_of(f), f.created_at)


async def _flag_opening(f: ReviewFlag) -> Opening | None:
    return _flag_open(f) if f.status == "open" else None


async def _flag_discover(reviewed: set[int]) -> list[Opening]:
    rows = await ReviewFlag.filter(status="open").order_by("id").limit(DISCOVER_LIMIT + len(reviewed))
    return [_flag_open(f) for f in rows if f.id not in reviewed][:DISCOVER_LIMIT]


# --- member contributions (community.knowledge_admin) -----------------------------------------
async def _contribution(d: Decision) -> bool:
    """A contribution is decided through its pending version: approving publishes it."""
    version = (
        await KnowledgeVersion.filter(contribution_id=d.target_id, state__in=("pending", "draft"))
        .order_by("-number")
        .first()
    )
    if version is None:
        return False
    try:
        if d.approve:
            await knowledge.approve(version, d.staff, d.note, services=d.services)
        else:
            await knowledge.reject(version, d.staff, d.note, services=d.services)
    except knowledge.BadState:
        return False
    except knowledge.LocaleTaken:
        raise TargetRefused(N_("Another item already has this key in that language; edit that item instead.")) from None
    return True


async def _contribution_opening(c: KnowledgeContribution) -> Opening | None:
    """As ``knowledge.contribute`` opens it."""
    if c.status != "pending":
        return None
    return Opening(c, "member contribution", c.text, _member_of(c), c.created_at)


async def _contribution_pages(ids: list[int]) -> dict[int, str]:
    rows = await KnowledgeContribution.filter(id__in=ids).values_list("id", "item_id")
    return {cid: f"/admin/knowledge/{item}" if item else "/admin/knowledge" for cid, item in rows}


# --- learned question phrasings (community.knowledge_admin.learning) ---------------------------
async def _variant(d: Decision) -> bool:
    cv = await CandidateVariant.get_or_none(id=d.target_id)
    if cv is None:
        return False
    who = knowledge.author_of(d.staff)
    if d.approve:
        if d.services is None:
            raise TargetRefused(N_("Accepting a phrasing needs the running knowledge service."))
        return await learning.accept(d.services, cv, who)
    return await learning.reject(cv, who)


async def _variant_opening(cv: CandidateVariant) -> Opening | None:
    """As ``learning.suggest_variant`` opens it."""
    return Opening(cv, "learned from use", cv.text, None, cv.created_at) if cv.status == "candidate" else None


async def _variant_waiting(ids: list[int]) -> set[int]:
    """Auto-accepted at the quorum (``learning.suggest_variant``) after its review was opened."""
    return _ids(await CandidateVariant.filter(id__in=ids, status="candidate").values_list("id", flat=True))


async def _variant_pages(ids: list[int]) -> dict[int, str]:
    rows = await CandidateVariant.filter(id__in=ids).values_list("id", "item_id")
    return {cid: f"/admin/knowledge/{item}" for cid, item in rows}


# --- reward orders in the manual queue (gamification.rewards) ---------------------------------
async def _redemption(d: Decision) -> bool:
    """Approving marks it fulfilled (the note is the fulfilment reference); rejecting fails
    it and refunds the points, once."""
    if d.approve:
        return await rewards.complete(d.target_id, d.note[:128])
    return await rewards.fail(d.target_id, f"staff {d.staff.username}: {d.note[:300]}")


async def _redemption_waiting(ids: list[int]) -> set[int]:
    """A late provider callback settles a queued order too (``rewards.complete``/``fail``)."""
    return _ids(await Redemption.filter(id__in=ids, status="queued").values_list("id", flat=True))


def _redemption_open(r: Redemption) -> Opening:
    return Opening(r, r.note[:255] or r.reward.kind, r.reward.name, _member_of(r), r.updated_at)


async def _redemption_opening(r: Redemption) -> Opening | None:
    if r.status != "queued":
        return None
    await r.fetch_related("reward")
    return _redemption_open(r)


async def _redemption_discover(reviewed: set[int]) -> list[Opening]:
    rows = (
        await Redemption.filter(status="queued")
        .order_by("id")
        .limit(DISCOVER_LIMIT + len(reviewed))
        .prefetch_related("reward")
    )
    return [_redemption_open(r) for r in rows if r.id not in reviewed][:DISCOVER_LIMIT]


HANDLERS: dict[Kind, KindHandler] = {
    Kind.MODERATION_ITEM: KindHandler(
        _moderation_item,
        ReviewItem,
        _moderation_opening,
        _same_page("/admin/moderation"),
        ("reviewer",),
        N_("Approve"),
        N_("Reject"),
        reject_needs_note=True,
    ),
    Kind.MODERATION_FLAG: KindHandler(
        _flag,
        ReviewFlag,
        _flag_opening,
        _same_page("/admin/rewards"),
        ("admin",),
        N_("Clear and release points"),
        N_("Confirm"),
        discover=_flag_discover,
    ),
    Kind.CONTRIBUTION: KindHandler(
        _contribution,
        KnowledgeContribution,
        _contribution_opening,
        _contribution_pages,
        ("reviewer",),
        N_("Publish"),
        N_("Reject"),
        reject_needs_note=True,
    ),
    Kind.CANDIDATE_VARIANT: KindHandler(
        _variant,
        CandidateVariant,
        _variant_opening,
        _variant_pages,
        ("reviewer",),
        N_("Accept"),
        N_("Reject"),
        waiting=_variant_waiting,
    ),
    Kind.REDEMPTION: KindHandler(
        _redemption,
        Redemption,
        _redemption_opening,
        _same_page("/admin/rewards"),
        ("admin",),
        N_("Mark fulfilled"),
        N_("Refund"),
        discover=_redemption_discover,
        waiting=_redemption_waiting,
    ),
}
