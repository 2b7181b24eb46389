"""Opening reviews: what the five kinds' owners call when they create a row staff must decide.

Kept apart from :mod:`community.review.service` (which imports every kind's owner to
dispatch decisions) so the owners can import this without an import cycle.
"""

from __future__ import annotations

from datetime import datetime

from tortoise.exceptions import IntegrityError
from tortoise.models import Model
from tortoise.transactions import in_transaction

from community.review.models import TARGET_TYPES, Kind, Reviewable, ReviewableAction, pending_key


async def open_review(
    kind: Kind | str,
    target: Model,
    reason: str = "",
    *,
    summary: str = "",
    created_by: int | None = None,
    since: datetime | None = None,
) -> Reviewable:
    """The pending reviewable for ``target``, opened now unless one is already pending
    (idempotent per kind and target: retries and concurrent callers get the same row).
    ``since`` dates a review opened after the fact (the queue's age filter and order use it)."""
    kind = Kind(kind)
    expected = TARGET_TYPES[kind]
    if type(target).__name__ != expected:
        raise TypeError(f"a {kind.value} review targets a {expected}, not {type(target).__name__}")
    key = pending_key(kind, int(target.pk))
    found = await Reviewable.get_or_none(pending_key=key)
    if found is not None:
        return found
    try:
        async with in_transaction():  # a savepoint inside the caller's transaction
            dated = {"created_at": since} if since is not None else {}
            row = await Reviewable.create(
                kind=kind,
                target_type=expected,
                target_id=int(target.pk),
                reason=reason[:255],
                summary=" ".join(summary.split())[:500],
                created_by_id=created_by,
                pending_key=key,
                **dated,
            )
            await ReviewableAction.create(reviewable=row, action="open", actor="system", note=reason[:500])
    except IntegrityError:  # a concurrent caller opened it first
        return await Reviewable.get(pending_key=key)
    return row
