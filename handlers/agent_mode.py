"""While an agent owns a member's ticket, the bot stays quiet and forwards to the ticket;
while the ticket waits for an agent, messages are copied onto it and the bot still answers.

Registered first in ``HANDLER_MODULES`` so it wraps every other handler and middleware.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.core.messages import Reply
from community.inbox import service as inbox
from handlers.router import Context, Router

router = Router("agent_mode")


@router.middleware
async def agent_mode(ctx: Context, call_next: Callable[[], Awaitable[list[Reply]]]) -> list[Reply]:
    inc = ctx.incoming
    if inc.event or (not inc.text and not inc.action):
        return await call_next()
    # a member created by this very message cannot have a ticket yet; the pipeline read a
    # known sender's with their account (inbox.LIVE_TICKET); later middlewares (offers) reuse it
    if ctx.new_member:
        ticket = None
    elif inbox.LIVE_TICKET.name in ctx.extra:
        ticket = ctx.extra[inbox.LIVE_TICKET.name]
    else:
        ticket = await inbox.live_ticket(ctx.member.id)
    ctx.extra[inbox.LIVE_TICKET.name] = ticket
    if ticket is None:
        return await call_next()
    text = ctx.text or f"[{inc.action}]"
    if ticket.status != "claimed":
        # waiting for an agent: the bot still helps, and the agent will see what was said
        if ctx.text:
            await inbox.add_member_message(ctx.services, ticket, text, ctx.channel)
        return await call_next()
    await inbox.add_member_message(ctx.services, ticket, text, ctx.channel)
    ctx.extra["kind"] = "to_agent"
    return []  # the agent answers from the inbox
