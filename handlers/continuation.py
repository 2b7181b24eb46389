"""Paged answers ("回复 N 看全文"): the conversation half of a channel's size budget.

A channel whose sender is a :class:`bot.core.inbound.PagedChannel` (SMS) cuts every reply
to what fits; this middleware keeps what was cut off in the member's conversation state,
and the extra choice's action (:data:`bot.core.inbound.MORE_ACTION`) brings the next
page, which is cut the same way. The channel knows segments, this module knows the member:
neither imports the other.

Included last by ``handlers.build_router``: its middleware is the innermost, so it pages
the handler's own answer (the outer middlewares, such as offers, add to the paged result).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.core.inbound import MORE_ACTION, PagedChannel
from bot.core.messages import Reply
from handlers.router import Context, Router

# where the rest of the last cut answer waits (the name predates other paged channels:
# kept, so states stored before an upgrade still page)
STATE_KEY = "sms_more"

router = Router("continuation")


@router.middleware
async def page_replies(ctx: Context, call_next: Callable[[], Awaitable[list[Reply]]]) -> list[Reply]:
    """Fit replies into a paged channel's budget; the last cut reply's rest is kept."""
    replies = await call_next()
    sender = ctx.services.channels.get(ctx.channel)
    if sender is None or not isinstance(sender, PagedChannel):  # most channels: no budget
        return replies
    ctx.incoming.meta["locale"] = ctx.locale  # the channel renders in it (a language change counts)
    out: list[Reply] = []
    for i, reply in enumerate(replies):
        head, rest = sender.fit(reply, ctx._)
        if rest is not None:
            if i == len(replies) - 1:
                ctx.state[STATE_KEY] = rest.to_dict()
            else:  # only the last reply's choices stay pending: cut earlier ones plainly
                head = Reply(text=head.text, choices=[], kind=head.kind, item_id=head.item_id)
        out.append(head)
    return out


@router.action(MORE_ACTION)
async def show_more(ctx: Context) -> Reply:
    """The next page of the last long answer."""
    data = ctx.state.pop(STATE_KEY, None)
    if not data:
        return Reply(text=ctx._("There is nothing more to show. Type your question and I will help."), kind="error")
    return Reply.from_dict(data)
