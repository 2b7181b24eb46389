"""Context-triggered offers: after an answer, append the best eligible offer.

A middleware, so it sees every handler's answer; it runs inside the agent-ownership
middleware (registered after it) and never breaks an answer: a failure is logged and
the answer goes out without the offer.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from bot.core.events import OfferAccepted
from bot.core.messages import Reply
from community.offers.engine import UNKNOWN
from community.offers.service import ANSWER_KINDS, build_context, follow, offer_for_answer
from handlers.router import Context, Router

log = logging.getLogger(__name__)

router = Router("offers")


@router.middleware
async def offers_middleware(ctx: Context, call_next: Callable[[], Awaitable[list[Reply]]]) -> list[Reply]:
    replies = await call_next()
    if not ctx.services.settings.offers_enabled:
        return replies
    target = next((r for r in reversed(replies) if r.kind in ANSWER_KINDS and r.item_id is not None), None)
    if target is None or target.item_id is None or any(r.kind == "offer_accept" for r in replies):
        return replies
    try:
        item = await ctx.services.kb.get(target.item_id)
        octx = await build_context(
            ctx.member,
            channel=ctx.channel,
            locale=ctx.locale,
            question=ctx.state.last_query or ctx.text,
            item_id=target.item_id,
            category=item.category if item else "",
            state=ctx.state,
            ticket=ctx.extra.get("live_ticket", UNKNOWN),
        )
        await offer_for_answer(ctx.member, target, octx, ctx.services.settings, ctx.domains.offers)
    except Exception:  # an offer is never worth losing the answer
        log.exception("offer selection failed for member %s", ctx.member.id)
    return replies


@router.action("offer")
async def accept_offer(ctx: Context) -> Reply:
    """The member pressed the offer's button: record the acceptance once."""
    followed = await follow(ctx.args, "accept", member_id=ctx.member.id)
    if followed is None:
        return Reply(text=ctx._("Sorry, this offer is no longer available."), kind="error")
    if not followed.new:
        return Reply(
            text=ctx._("We already have your request for %(title)s.", title=followed.offer.title), kind="offer_accept"
        )
    await ctx.services.events.publish(
        OfferAccepted(member_id=ctx.member.id, offer_id=followed.offer.id, channel=ctx.channel)
    )
    return Reply(
        text=ctx._(
            "Thank you! We have received your request for %(title)s and will confirm it by message.",
            title=followed.offer.title,
        ),
        kind="offer_accept",
    )
