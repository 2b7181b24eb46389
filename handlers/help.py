"""Welcome and help: what the service can do, in the member's language."""
from __future__ import annotations

from bot.messages import Choice, Reply
from handlers.router import Context, Router

router = Router("help")


def help_reply(ctx: Context, *, welcome: bool = False) -> Reply:
    _ = ctx._
    lines = []
    if welcome:
        lines.append(_("Welcome to EveryCSR! Everyone can be a customer service rep here."))
    lines.append(_("Type your question (for example: how do I check my data balance), or send a business code such as CXLL."))
    lines.append(_("Commands: 帮助 help · 人工 talk to a person · 积分 my points · 排行 leaderboard · 语言 language"))
    return Reply(
        text="\n".join(lines),
        choices=[Choice(label=_("Talk to a person"), action="human"), Choice(label=_("Choose your language"), action="lang:")],
        kind="help",
    )


@router.command("help", "帮助", "幫助", "?", "？", help="What I can do")
async def help_cmd(ctx: Context) -> Reply:
    return help_reply(ctx)


@router.command("start", help="Start")
async def start_cmd(ctx: Context) -> Reply:
    return help_reply(ctx, welcome=True)


@router.event("start")
@router.event("subscribe")
async def subscribed(ctx: Context) -> Reply:
    return help_reply(ctx, welcome=True)


@router.event("unknown_action")
async def unknown_action(ctx: Context) -> Reply:
    return Reply(
        text=ctx._("Sorry, that option is no longer available. Type your question and I will help."),
        kind="error",
    )
