"""👍/👎 on an answer: the member's own verdict feeds the match-accuracy figure."""

from __future__ import annotations

from tortoise.exceptions import IntegrityError

from bot.core.messages import Reply
from bot.core.models import AnswerFeedback, TranscriptEntry
from handlers.replies import next_steps
from handlers.router import Context, Router

router = Router("feedback")


@router.action("fb")
async def feedback(ctx: Context) -> Reply:
    verdict, _, raw_id = ctx.args.partition(":")
    if verdict not in ("up", "down") or not raw_id.isdigit():
        return Reply(text=ctx._("Sorry, I did not understand that button."), kind="error")
    item_id = int(raw_id)
    shown = (
        await TranscriptEntry.filter(member_id=ctx.member.id, direction="out", item_id=item_id).order_by("-id").first()
    )
    if shown is None:
        return Reply(text=ctx._("Sorry, I did not understand that button."), kind="error")
    try:
        await AnswerFeedback.create(
            member_id=ctx.member.id,
            transcript_id=shown.id,
            item_id=item_id,
            helpful=verdict == "up",
            query=ctx.state.get("last_query", "")[:2000],
            confidence=shown.confidence,
            channel=ctx.channel,
        )
    except IntegrityError:
        return Reply(text=ctx._("Thanks, we already have your feedback on this answer."), kind="feedback")
    hook = ctx.services.extras.get("on_feedback")
    if hook:
        await hook(ctx, item_id, verdict == "up")
    if verdict == "up":
        return Reply(text=ctx._("Thanks for your feedback! Glad it helped."), kind="feedback")
    return next_steps(ctx, ctx._("Sorry this did not help. You can:"), kind="feedback")
