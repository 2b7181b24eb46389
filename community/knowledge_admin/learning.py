"""Learning from use: question phrasings that members and agents tie to an item.

Sources: a "did you mean" pick (``pick``), a pick made after a 👎 on another item
(``better_pick``), and an agent's ticket closed as answered by the item (``ticket``; the inbox
calls ``on_ticket_resolved``). Only a choice that was offered for the member's last question
counts (``handlers/ask.py`` keeps the offered item ids beside ``last_query``). Each is a
*candidate* until a reviewer accepts it, or until ``Settings.kb_variant_auto_accept`` distinct
members agreed (0 = reviewer only). Accepting appends the phrasing to
``KnowledgeItem.variants`` and goes through ``KnowledgeService.reindex``: the item is
re-indexed here (no rebuild) and every other worker reloads it from the database.
"""

from __future__ import annotations

import logging
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from community.knowledge_admin.models import CandidateVariant
from community.models import KnowledgeItem
from community.review.queue import open_review
from bot.core.normalize import normalize

log = logging.getLogger(__name__)

MAX_LEN = 200  # longer texts are messages, not questions


async def suggest_variant(
    services: Any, item_id: int, query: str, source: str, member_id: int | None = None
) -> CandidateVariant | None:
    """Record one vote for ``query`` as a phrasing of ``item_id``; auto-accept at the quorum."""
    norm = normalize(query)
    if not norm or len(norm) > MAX_LEN:
        return None
    item = await KnowledgeItem.get_or_none(id=item_id, status="published")
    if item is None or norm in {normalize(x) for x in [item.title, *item.variants]}:
        return None  # already a phrasing of the item
    try:
        cv, _created = await CandidateVariant.get_or_create(
            item_id=item_id, normalized=norm, defaults={"text": query.strip()[:MAX_LEN]}
        )
    except IntegrityError:  # a concurrent first vote
        cv = await CandidateVariant.get(item_id=item_id, normalized=norm)
    if cv.status != "candidate":
        return cv
    changed = False
    if source not in cv.sources:
        cv.sources = [*cv.sources, source]
        changed = True
    if member_id is not None and member_id not in cv.members:
        cv.members = [*cv.members, member_id]
        changed = True
    if changed:
        await cv.save()
    quorum = int(getattr(services.settings, "kb_variant_auto_accept", 0) or 0)
    if quorum and len(cv.members) >= quorum:
        await accept(services, cv, "auto")
    if cv.status == "candidate":
        await open_review("candidate_variant", cv, "learned from use", summary=cv.text)
    return cv


async def accept(services: Any, cv: CandidateVariant, decided_by: str) -> bool:
    """Add the phrasing to the item (stored and indexed). False if already decided."""
    async with in_transaction():
        n = await CandidateVariant.filter(id=cv.id, status="candidate").update(status="accepted", decided_by=decided_by)
        if not n:
            return False
        item = await KnowledgeItem.select_for_update().get(id=cv.item_id)
        if cv.text not in item.variants:
            item.variants = [*item.variants, cv.text]
            await item.save(update_fields=["variants", "updated_at"])
    cv.status = "accepted"
    # through the knowledge service: the cached item gets the new variants, the index is
    # updated for this one item, and the other workers are told to reload it
    services.kb.reindex([item])
    return True


async def reject(cv: CandidateVariant, decided_by: str) -> bool:
    n = await CandidateVariant.filter(id=cv.id, status="candidate").update(status="rejected", decided_by=decided_by)
    return bool(n)


# --- hooks the handlers call through services.extras ---------------------------------------


async def on_pick(ctx: Any, item_id: int, query: str) -> None:
    """A "did you mean" choice (ask handler). After a 👎 it is a "better pick"."""
    downvoted = ctx.state.pop("kb_downvoted", None)
    source = "better_pick" if downvoted and downvoted != item_id else "pick"
    await suggest_variant(ctx.services, item_id, query, source, ctx.member.id)


async def on_feedback(ctx: Any, item_id: int, helpful: bool) -> None:
    """Remember a 👎 so that the member's next pick counts as the better answer."""
    if helpful:
        ctx.state.pop("kb_downvoted", None)
    else:
        ctx.state["kb_downvoted"] = item_id


async def on_ticket_resolved(services: Any, item_id: int, question: str, member_id: int | None = None) -> None:
    """For the agent inbox: a ticket about ``question`` was resolved with ``item_id``.
    The agent's choice is one vote (the asker's member id counts toward the quorum)."""
    await suggest_variant(services, item_id, question, "ticket", member_id)
