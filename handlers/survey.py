"""The one-question satisfaction survey after a ticket closes: a 1–5 answer."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from bot.core.messages import Choice, Reply
from community.inbox import service as inbox
from handlers.router import Context, Router

router = Router("survey")


COMMENT_STATE = "survey_comment"


def _thanks(ctx: Context, score: int, ticket_id: int | None = None) -> Reply:
    """Thanks, with an optional "add a comment" button (a comment is never assumed: the
    member's next message may well be a new question)."""
    if score <= 2:
        text = ctx._(
            "Thank you for rating us %(score)s. We are sorry we fell short; your feedback goes to our service team.",
            score=score,
        )
    else:
        text = ctx._("Thank you for rating us %(score)s!", score=score)
    choices = [Choice(label=ctx._("Add a comment"), action=f"svc:{ticket_id}")] if ticket_id else []
    return Reply(text=text, kind="survey_answer", choices=choices)


@router.middleware
async def survey_digit(ctx: Context, call_next: Callable[[], Awaitable[list[Reply]]]) -> list[Reply]:
    """A bare 1–5 right after a survey is the answer, even on SMS where the survey's
    numbered choices were not the last inline reply."""
    text = ctx.text
    if not ctx.incoming.action and len(text) == 1 and text in "12345" and await inbox.awaiting_survey(ctx.member.id):
        ticket = await inbox.record_survey(ctx.services, ctx.member.id, int(text))
        if ticket is not None:
            ctx.state.pop("choices", None)
            return [_thanks(ctx, int(text), ticket.id)]
    return await call_next()


@router.action("sv")
async def survey_button(ctx: Context) -> Reply:
    raw_ticket, _, raw_score = ctx.args.partition(":")
    if not (raw_ticket.isdigit() and raw_score.isdigit()):
        return Reply(text=ctx._("Sorry, I did not understand that button."), kind="error")
    ticket = await inbox.record_survey(ctx.services, ctx.member.id, int(raw_score), int(raw_ticket))
    if ticket is None:
        return Reply(text=ctx._("Thanks, we already have your rating for this request."), kind="survey_answer")
    return _thanks(ctx, int(raw_score), ticket.id)


@router.action("svc")
async def comment_button(ctx: Context) -> Reply:
    """ "Add a comment" after a score: the next message is the comment."""
    if not ctx.args.isdigit():
        return Reply(text=ctx._("Sorry, I did not understand that button."), kind="error")
    ctx.state["await"] = COMMENT_STATE
    ctx.state["survey_ticket"] = int(ctx.args)
    return Reply(text=ctx._("Please type your comment in one message."), kind="survey_comment")


@router.state(COMMENT_STATE)
async def comment_text(ctx: Context) -> Reply:
    ctx.state.pop("await", None)
    ticket_id = ctx.state.pop("survey_ticket", None)
    if not isinstance(ticket_id, int) or not ctx.text:
        return Reply(text=ctx._("Sorry, I did not understand that button."), kind="error")
    if await inbox.record_survey_comment(ctx.services, ctx.member.id, ticket_id, ctx.text):
        return Reply(text=ctx._("Thank you, your comment has been passed to our service team."), kind="survey_answer")
    return Reply(text=ctx._("Thanks, we already have your comment on this request."), kind="survey_answer")
