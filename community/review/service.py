"""The review queue: open a review, list what waits, decide through the kind's own code.

``decide`` claims the reviewable, calls the kind's approve/reject (``kinds.HANDLERS``) and
writes the audit row in one transaction: if the kind's code fails, the reviewable is still
pending and nothing is recorded. It is the one decision path: ``/staff/review`` calls it, and
so do the kinds' own staff pages (``/admin/moderation``, ``/admin/knowledge``,
``/admin/rewards``) through :func:`decide_target`, which finds (or opens) the target's review.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from tortoise.transactions import in_transaction

from bot.core.i18n import N_
from bot.staff.models import StaffUser
from community.review.kinds import HANDLERS, Decision, KindHandler, TargetRefused
from community.review.models import Kind, Reviewable, ReviewableAction, Status, pending_key
from community.review.queue import open_review

if TYPE_CHECKING:
    from gamification.service import Gamification

ACTIONS = ("approve", "reject")
PAGE = 200


class ReviewError(ValueError):
    """A decision the queue refuses; ``msgid`` (marked ``N_``) is shown to staff."""

    status = 400

    def __init__(self, msgid: str, **params: Any) -> None:
        super().__init__(msgid % params if params else msgid)
        self.msgid = msgid
        self.params = params


class NotFound(ReviewError):
    status = 404


class NotAllowed(ReviewError):
    status = 403


class AlreadyDecided(ReviewError):
    status = 409


def handler(kind: Kind | str) -> KindHandler:
    return HANDLERS[Kind(kind)]


def kinds_for(staff: StaffUser) -> list[Kind]:
    """The kinds this member of staff may decide (admins: all)."""
    return [k for k, h in HANDLERS.items() if staff.has_role(*h.roles)]


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def decide(
    reviewable: Reviewable | int,
    action: str,
    staff: StaffUser,
    note: str = "",
    services: Any = None,
    gamification: "Gamification | None" = None,
) -> Reviewable:
    """Approve or reject once, through the kind's own service. A target already settled
    elsewhere leaves the reviewable ``ignored`` (audited, nothing else changes). ``services``
    (the knowledge service) and ``gamification`` (points reviews) are the app's; a kind that
    needs one it was not given refuses (:class:`ReviewError`) and the review stays pending."""
    rid = reviewable if isinstance(reviewable, int) else reviewable.id
    row = await Reviewable.get_or_none(id=rid)
    if row is None:
        raise NotFound(N_("No such review item."))
    if action not in ACTIONS:
        raise ReviewError(N_("Choose approve or reject."))
    h = handler(row.kind)
    if not staff.has_role(*h.roles):
        raise NotAllowed(N_("Your role cannot decide this kind of item."))
    note = note.strip()[:2000]
    if action == "reject" and h.reject_needs_note and not note:
        raise ReviewError(N_("Please give a reason for rejecting."))
    approve = action == "approve"
    async with in_transaction():
        claimed = await Reviewable.filter(id=row.id, status=Status.PENDING).update(
            status=Status.APPROVED if approve else Status.REJECTED,
            reviewed_by_id=staff.id,
            reviewed_at=_now(),
            pending_key=None,
        )
        if not claimed:
            raise AlreadyDecided(N_("Someone else already decided this item."))
        try:
            changed = await h.decide(Decision(row.target_id, approve, staff, note, services, gamification))
        except TargetRefused as exc:
            raise ReviewError(exc.msgid, **exc.params) from None
        if not changed:
            await Reviewable.filter(id=row.id).update(status=Status.IGNORED)
        await ReviewableAction.create(
            reviewable_id=row.id,
            action=action if changed else "ignore",
            actor=f"staff:{staff.username}"[:96],
            staff_id=staff.id,
            note=note if changed else f"already settled elsewhere; {note}".strip("; "),
        )
    return await Reviewable.get(id=row.id)


async def decide_target(
    kind: Kind | str,
    target_id: int,
    action: str,
    staff: StaffUser,
    note: str = "",
    services: Any = None,
    gamification: "Gamification | None" = None,
) -> Reviewable:
    """Decide a target the way a kind's own staff page names it (a moderation item, a
    contribution, a flag ...): through its pending review and :func:`decide`, so every page
    shares one claim, one audit and one 409. A target still waiting without a review (a row
    made before the queue, a flag or order the queue page has not discovered yet) has one
    opened first (``open_review`` is idempotent per target). Raises ``NotFound`` for no such
    target, and ``AlreadyDecided`` when it no longer waits: decided on another page, or
    settled elsewhere (the review is then ``ignored``, audited, and nothing is applied)."""
    kind = Kind(kind)
    h = handler(kind)
    if action not in ACTIONS:
        raise ReviewError(N_("Choose approve or reject."))
    if not staff.has_role(*h.roles):  # before opening anything
        raise NotAllowed(N_("Your role cannot decide this kind of item."))
    row = await Reviewable.get_or_none(pending_key=pending_key(kind, target_id))
    if row is None:
        target = await h.model.get_or_none(id=target_id)
        if target is None:
            raise NotFound(N_("No such review item."))
        opening = await h.opening(target)
        if opening is None:
            raise AlreadyDecided(N_("Someone else already decided this item."))
        row = await open_review(
            kind,
            opening.target,
            opening.reason,
            summary=opening.summary,
            created_by=opening.created_by,
            since=opening.since,
        )
    done = await decide(row, action, staff, note, services, gamification)
    if done.status == Status.IGNORED:
        raise AlreadyDecided(N_("Someone else already decided this item."))
    return done


async def _pending_targets(kind: Kind) -> set[int]:
    rows: list[Any] = await Reviewable.filter(kind=kind, status=Status.PENDING).values_list("target_id", flat=True)
    return {int(t) for t in rows}


async def open_discovered(kinds: list[Kind] | None = None) -> int:
    """Open reviews for the waiting targets of kinds that cannot call ``open_review``
    themselves (gamification's); how many were opened."""
    opened = 0
    for kind in kinds or list(Kind):
        discover = handler(kind).discover
        if discover is None:
            continue
        reviewed = await _pending_targets(kind)
        for o in await discover(reviewed):
            await open_review(kind, o.target, o.reason, summary=o.summary, created_by=o.created_by, since=o.since)
            opened += 1
    return opened


async def refresh(kinds: list[Kind] | None = None) -> None:
    """Bring the queue up to date before it is read: discovered targets opened, targets
    settled outside staff pages closed."""
    await open_discovered(kinds)
    await settle_stale(kinds)


async def settle_stale(kinds: list[Kind] | None = None) -> int:
    """Mark ``ignored`` the pending reviewables whose targets were settled by something other
    than a staff decision; how many. Staff pages all decide through :func:`decide`, so this is
    only for the kinds with ``waiting``: reward orders a late top-up callback completed or
    refunded, and phrasings auto-accepted at the quorum. (Reviews left pending by the pages'
    direct decisions before they went through the queue were closed by migration
    ``0014_review_one_path``.)"""
    done = 0
    for kind in kinds or list(Kind):
        waiting = handler(kind).waiting
        if waiting is None:
            continue
        ids = sorted(await _pending_targets(kind))
        if not ids:
            continue
        gone = set(ids) - await waiting(ids)
        if not gone:
            continue
        async with in_transaction():
            rows = await Reviewable.filter(kind=kind, status=Status.PENDING, target_id__in=list(gone))
            for r in rows:
                if await Reviewable.filter(id=r.id, status=Status.PENDING).update(
                    status=Status.IGNORED, reviewed_at=_now(), pending_key=None
                ):
                    await ReviewableAction.create(
                        reviewable_id=r.id, action="ignore", actor="system", note="settled outside the review queue"
                    )
                    done += 1
    return done


@dataclass(frozen=True)
class Filters:
    """The list's filters: kind (empty = every kind the reader may decide), status, and
    ``older_than`` hours (0 = any age)."""

    kind: str = ""
    status: str = Status.PENDING.value
    older_than: int = 0


AGES = (0, 1, 24, 24 * 7)  # hours offered by the page


def parse_filters(query: Any) -> Filters:
    """Filters from a query string, unknown values dropped."""
    kind = str(query.get("kind", ""))
    status = str(query.get("status", Status.PENDING.value))
    try:
        age = int(str(query.get("age", "0")) or 0)
    except ValueError:
        age = 0
    return Filters(
        kind=kind if kind in {k.value for k in Kind} else "",
        status=status if status in {s.value for s in Status} | {"all"} else Status.PENDING.value,
        older_than=age if age in AGES else 0,
    )


async def listing(staff: StaffUser, f: Filters, limit: int = PAGE) -> list[Reviewable]:
    """The rows the page shows: pending oldest first (first in, first out), decided newest first."""
    allowed = kinds_for(staff)
    kinds = [k for k in allowed if not f.kind or k.value == f.kind]
    if not kinds:
        return []
    qs = Reviewable.filter(kind__in=kinds)
    if f.status != "all":
        qs = qs.filter(status=f.status)
    if f.older_than:
        qs = qs.filter(created_at__lte=_now() - timedelta(hours=f.older_than))
    order = "created_at" if f.status == Status.PENDING.value else "-updated_at"
    return await qs.order_by(order, "id").limit(limit).prefetch_related("created_by", "reviewed_by")


async def pages_of(rows: list[Reviewable]) -> dict[int, str]:
    """Reviewable id -> the target's own staff page."""
    out: dict[int, str] = {}
    for kind in {Kind(r.kind) for r in rows}:
        mine = [r for r in rows if r.kind == kind]
        by_target = await handler(kind).pages([r.target_id for r in mine])
        out.update({r.id: by_target.get(r.target_id, "") for r in mine})
    return out


__all__ = [
    "AlreadyDecided",
    "Filters",
    "NotAllowed",
    "NotFound",
    "ReviewError",
    "decide",
    "decide_target",
    "kinds_for",
    "listing",
    "open_discovered",
    "open_review",
    "pages_of",
    "parse_filters",
    "refresh",
    "settle_stale",
]
