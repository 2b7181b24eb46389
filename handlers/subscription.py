"""Channel events about the member's subscription and channel menus, on any channel.

``unsubscribe`` (WeChat unfollow, a blocked Telegram bot) marks the account inactive
with a reason and answers nothing: nothing more can or should be sent there. A channel
menu ``click`` carries a key that is an action (``kb:12``, ``human``) or a command word
(``帮助``); it is routed as if the member had tapped that button or typed that word.
"""

from __future__ import annotations

from bot.core.models import ChannelAccount
from handlers.router import Context, HandlerResult, Router, as_list

router = Router("subscription")


@router.event("unsubscribe")
async def unsubscribed(ctx: Context) -> None:
    reason = str(ctx.incoming.meta.get("reason") or "unsubscribed")[:64]
    await ChannelAccount.filter(id=ctx.account.id).update(active=False, inactive_reason=reason)
    ctx.account.active = False
    ctx.account.inactive_reason = reason
    return None


@router.event("click")
async def menu_click(ctx: Context) -> HandlerResult:
    key = (ctx.incoming.payload or "").strip()
    pipeline = ctx.services.pipeline
    root = pipeline.router if pipeline is not None else router
    handler, args = root.find_action(key) if key else (None, "")
    if handler is not None:
        ctx.incoming.action = key
    else:
        handler, args = root.find_command(key) if key else (None, "")
    if handler is None:
        handler = root.find_event("unknown_action")
    if handler is None or handler is menu_click:
        return None
    ctx.args = args
    return as_list(await handler(ctx))
