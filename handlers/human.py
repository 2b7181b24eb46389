"""Talking to a person: "人工"/human, the no-answer button, and complaints (urgent)."""

from __future__ import annotations

from bot.core.i18n import N_

from collections.abc import Awaitable, Callable

from bot.core.messages import Reply
from bot.core.models import UnansweredQuestion
from community.inbox import service as inbox
from community.inbox.intent import is_complaint
from handlers.router import Context, Router

router = Router("human")


async def hand_over(ctx: Context, reason: str, summary: str, *, question_id: int | None = None) -> Reply:
    failed = None
    if summary:  # the search that failed, for the agent's view
        failed = await UnansweredQuestion.filter(member_id=ctx.member.id, text=summary[:2000]).order_by("-id").first()
    ticket, created = await inbox.open_ticket(
        ctx.services,
        ctx.member.id,
        ctx.channel,
        reason,
        summary=summary,
        unanswered_id=failed.id if failed else None,
        question_id=question_id,
        said="" if ctx.incoming.action else ctx.text,
    )
    ctx.extra["ticket"] = ticket.id
    ctx.extra["live_ticket"] = ticket
    if reason == "complaint":
        text = ctx._(
            "We are sorry for the trouble. Your complaint has been passed to our service staff with priority (ticket %(id)s); an agent will reply to you here.",
            id=ticket.id,
        )
    elif created:
        text = ctx._(
            "I have passed your request to our service staff (ticket %(id)s). An agent will reply to you here; you do not need to repeat yourself.",
            id=ticket.id,
        )
    else:
        text = ctx._(
            "Your request is already with our service staff (ticket %(id)s). An agent will reply to you here.",
            id=ticket.id,
        )
    return Reply(text=text, kind="handover")


@router.middleware
async def complaints(  # an expression of complaint; a question about complaints goes on to the knowledge base
    ctx: Context, call_next: Callable[[], Awaitable[list[Reply]]]
) -> list[Reply]:
    if ctx.text and not ctx.incoming.action and not ctx.state.get("await") and is_complaint(ctx.text):
        return [await hand_over(ctx, "complaint", ctx.text)]
    return await call_next()


@router.action("human")
async def human_button(ctx: Context) -> Reply:
    summary = ctx.state.get("last_unanswered") or ctx.state.get("last_query") or ""
    return await hand_over(ctx, "human", summary)


@router.command("human", "人工", "转人工", "轉人工", "人工服务", "人工服務", help=N_("Talk to a person"))
async def human_command(ctx: Context) -> Reply:
    summary = ctx.args or ctx.state.get("last_unanswered") or ctx.state.get("last_query") or ""
    return await hand_over(ctx, "human", summary)
