"""Self-service: answer from the knowledge base, offer "did you mean", or hand on."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime
from zoneinfo import ZoneInfo

from bot.core.messages import Choice, Reply
from bot.core.models import UnansweredQuestion
from community.account_queries import is_account_query
from community.search import Match
from bot.core.normalize import normalize
from handlers.account_query import account_reply
from handlers.replies import answer_reply, next_steps
from handlers.router import Context, Router

router = Router("ask")

MAX_SUGGESTIONS = 3
# state key: item ids offered as "did you mean" for state["last_query"]; only a pick among
# them (at once, or later as the better pick after a 👎) is evidence about that question
OFFERED = "offered"


async def record_unanswered(ctx: Context, text: str, best_item: int | None, best_score: float) -> None:
    await UnansweredQuestion.create(
        member_id=ctx.member.id,
        channel=ctx.channel,
        text=text[:2000],
        normalized=normalize(text)[:2000],
        best_item_id=best_item,
        best_score=best_score,
    )


async def no_answer(
    ctx: Context, question: str, best_item: int | None = None, best_score: float = 0.0, *, text: str | None = None
) -> Reply:
    await record_unanswered(ctx, question, best_item, best_score)
    ctx.state["last_unanswered"] = question
    return next_steps(
        ctx,
        text or ctx._("Sorry, I could not find an answer to that yet. I have noted your question. You can:"),
    )


async def with_repeat_notice(ctx: Context, reply: Reply) -> Reply:
    """Proactive help for a repeat contact: the same answer earlier today did not settle it.

    Counted in the conversation state (per member, across channels), not by a query.
    """
    today = datetime.now(ZoneInfo(ctx.services.settings.service_timezone)).date().isoformat()
    seen = ctx.state.get("seen")
    if not seen or seen.get("day") != today:
        seen = {"day": today, "items": {}}
    key = str(reply.item_id)
    earlier = seen["items"].get(key, 0)
    seen["items"][key] = earlier + 1
    ctx.state["seen"] = seen
    if earlier:
        ctx.extra["repeat_contact"] = earlier + 1
        note = ctx._(
            "This is your %(n)s time asking about this today. If it is still not solved, a person can help.",
            n=ordinal(ctx, earlier + 1),
        )
        reply.text = f"{note}\n\n{reply.text}"
        reply.choices.append(Choice(label=ctx._("Talk to a person"), action="human"))
    return reply


def ordinal(ctx: Context, n: int) -> str:
    if ctx.locale == "en":
        return {1: "1st", 2: "2nd", 3: "3rd"}.get(n, f"{n}th")
    return ctx._("#%(n)s", n=n)


@router.fallback()
async def ask(ctx: Context) -> Reply | None:
    text = ctx.text
    if not text:
        return Reply(text=ctx._("I can read text messages. Type your question, or send 帮助 (help)."), kind="help")
    kb = ctx.services.kb
    ctx.state["last_query"] = text
    ctx.state.pop(OFFERED, None)  # choices offered for an earlier question no longer count as picks
    if text.isascii() and text.replace(" ", "").isalnum() and len(text) <= 16:
        item = await kb.by_code(text.replace(" ", ""), ctx.locale)
        if item:
            shown = await kb.localized(item, ctx.locale)
            if is_account_query(shown):
                looked_up = await account_reply(ctx, shown)
                if looked_up is not None:
                    return looked_up
            return answer_reply(ctx, shown, 1.0)
    decision = await kb.adecide(text, ctx.locale)
    if decision.reason == "out_of_domain":
        # gibberish, another script, or nothing in the KB near it: no unrelated choices (still
        # noted, so that "knowledge wanted" shows a topic the KB lacks)
        return await no_answer(
            ctx, text, text=ctx._("Sorry, I did not understand that. Could you ask it in other words? You can also:")
        )
    options = await _in_member_language(ctx, decision.matches[:MAX_SUGGESTIONS])
    if decision.kind == "answer":
        best = decision.matches[0]
        item = await kb.get(best.item_id)
        if item:
            reply = answer_reply(ctx, await kb.localized(item, ctx.locale), best.score)
            if decision.tentative:
                # one clear option: answered, with the way out right beneath it
                others = [(i, label) for i, label in options if i != best.item_id]
                not_this = ctx._("Not this one?")
                reply.text = f"{reply.text}\n\n{not_this}"
                reply.choices += [Choice(label=label, action=f"kb:{i}") for i, label in others]
                reply.choices.append(Choice(label=ctx._("None of these"), action="none"))
                ctx.state[OFFERED] = [i for i, _label in others]
            return await with_repeat_notice(ctx, reply)
    if decision.kind in ("answer", "suggest") and options:
        choices = [Choice(label=label, action=f"kb:{i}") for i, label in options]
        ctx.state[OFFERED] = [i for i, _label in options]
        choices.append(Choice(label=ctx._("None of these"), action="none"))
        return Reply(
            text=ctx._("Did you mean one of these?"),
            choices=choices,
            kind="suggest",
            confidence=decision.matches[0].score,
        )
    best = decision.matches[0] if decision.matches else None
    return await no_answer(ctx, text, best.item_id if best else None, best.score if best else 0.0)


async def _in_member_language(ctx: Context, matches: Iterable[Match]) -> list[tuple[int, str]]:
    """(item id, title) of the matches in the member's language: an item's own version in
    the member's locale when its key has one; items only in another language are left out,
    so a Chinese chat never shows English choices."""
    kb = ctx.services.kb
    family = ctx.locale.split("_")[0]
    out: list[tuple[int, str]] = []
    for m in matches:
        item = await kb.get(m.item_id)
        if item is None:
            continue
        local = await kb.localized(item, ctx.locale)
        if local.locale.split("_")[0] == family:
            out.append((m.item_id, local.title))
    return out


@router.action("kb")
async def show_item(ctx: Context) -> Reply:
    """A picked "did you mean" choice, or a menu/deep link to an item.

    Only a choice offered for the member's last question teaches anything: a menu click,
    deep link or forwarded link after an unrelated question is not a phrasing of the item.
    """
    kb = ctx.services.kb
    item = await kb.get(int(ctx.args)) if ctx.args.isdigit() else None
    if item is None:
        return Reply(text=ctx._("Sorry, that answer is no longer available."), kind="error")
    query = ctx.state.get("last_query")
    if query and item.id in (ctx.state.get(OFFERED) or ()):
        ctx.extra["picked"] = (item.id, query)
        hook = ctx.services.extras.get("on_pick")
        if hook:
            await hook(ctx, item.id, query)
    return answer_reply(ctx, await kb.localized(item, ctx.locale), None, kind="answer_pick")


@router.action("none")
async def none_of_these(ctx: Context) -> Reply:
    text = ctx.state.get("last_query") or ""
    return await no_answer(ctx, text) if text else next_steps(ctx, ctx._("What can I help you with? You can:"))
