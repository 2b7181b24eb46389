"""Members grow the knowledge base: 我来补充 / /contribute, and 公告 / /notices."""

from __future__ import annotations

from bot.core.i18n import N_
from bot.core.messages import Reply
from community.knowledge_admin import service
from community.moderation import service as moderation
from handlers.router import Context, Router

router = Router("contribute")


@router.command("contribute", "我来补充", "我來補充", "补充", help=N_("Add to the knowledge base"))
async def start(ctx: Context) -> Reply:
    if ctx.args.strip():
        return await _save(ctx, ctx.args)
    ctx.state["await"] = "contribute"
    return Reply(
        text=ctx._(
            "Thank you for helping! Send the question on the first line and the answer on the "
            "next lines. To improve an answer you just got, send #<item number> and your text."
        ),
        kind="contribute",
    )


@router.state("contribute")
async def receive(ctx: Context) -> Reply:
    ctx.state.pop("await", None)
    return await _save(ctx, ctx.text)


async def _save(ctx: Context, text: str) -> Reply:
    text = text.strip()
    item_id = None
    if text.startswith("#"):
        head, _, rest = text[1:].partition(" ")
        if head.isdigit() and rest.strip():
            item_id, text = int(head), rest
    if len(text) < 4:
        return Reply(text=ctx._("That is a bit short. Please send a question and its answer."), kind="contribute")
    text = text[:4000]
    verdict = await moderation.screen(text)
    if verdict.action == "block":  # the rest (hold, flag, warn) is seen by the reviewer anyway
        await moderation.record(
            ctx.services, verdict, member_id=ctx.member.id, content_type="contribution", content_id=None, text=text
        )
        return Reply(
            text=ctx._(
                "Sorry, your contribution could not be accepted because it contains words our "
                "community does not allow. Please rephrase it."
            ),
            kind="moderation",
        )
    c = await service.contribute(ctx.member.id, ctx.channel, text, item_id, ctx.locale)
    return Reply(
        text=ctx._("Thanks! Your contribution #%(id)s is waiting for review. We will tell you the outcome.", id=c.id),
        kind="contribute",
    )


@router.command("notices", "公告", "通知", help=N_("Latest announcements"))
async def notices(ctx: Context) -> Reply:
    items = await service.notices(5, ctx.locale)
    if not items:
        return Reply(text=ctx._("There are no announcements right now."), kind="notices")
    seen = ctx.state.get("notices_seen", 0)
    lines = [ctx._("Announcements:")]
    for i in items:
        mark = ctx._("[new] ") if i.id > seen else ""
        lines.append(f"{mark}{i.title}\n{i.answer.strip()}")
    ctx.state["notices_seen"] = max(i.id for i in items)
    return Reply(text="\n\n".join(lines), kind="notices")
