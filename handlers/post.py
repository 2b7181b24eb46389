"""The community from any channel: post a question, browse, answer, vote, accept."""

from __future__ import annotations

from bot.core.i18n import N_
from bot.core.messages import Card, Choice, Reply
from bot.core.models import UnansweredQuestion
from community.qa import service as qa
from community.qa.outcomes import ACCEPT_OUTCOMES, ANSWER_OUTCOMES, VOTE_OUTCOMES, outcome
from community.qa.service import Status
from handlers.router import Context, Router

router = Router("post")

LIST_SIZE = 5


def _post_result(ctx: Context, posted: qa.Posted) -> Reply:
    _ = ctx._
    if posted.status is Status.BLOCKED:
        return Reply(
            text=_(
                "Sorry, your question could not be posted because it contains words our community does not allow. Please rephrase it."
            ),
            kind="moderation",
        )
    q = posted.question
    assert q is not None
    if posted.status is Status.HELD:
        return Reply(
            text=_("Thanks! Your question %(code)s will appear in the community after a quick review.", code=q.code),
            kind="post",
        )
    minutes = int(ctx.services.settings.qa_deadline_minutes)
    return Reply(
        text=_(
            "Your question is posted to the community as %(code)s. You will be notified here when someone answers. If it is not settled within %(minutes)s minutes, a service agent will take over.",
            code=q.code,
            minutes=minutes,
        ),
        choices=[Choice(label=_("Talk to a person now"), action="human")],
        cards=[Card(title=q.code, url=qa.question_url(ctx.services, q.code))],
        kind="post",
    )


async def _post(ctx: Context, text: str) -> Reply:
    ctx.state.pop("await", None)
    failed = await UnansweredQuestion.filter(member_id=ctx.member.id, text=text[:2000]).order_by("-id").first()
    posted = await qa.post_question(
        ctx.services, ctx.member.id, ctx.channel, text, locale=ctx.locale, unanswered_id=failed.id if failed else None
    )
    if posted.question is not None:
        ctx.state["last_question"] = posted.question.code
    return _post_result(ctx, posted)


def _ask_for_text(ctx: Context) -> Reply:
    ctx.state["await"] = "post"
    return Reply(text=ctx._("Type your question for the community:"), kind="prompt")


@router.action("post")
async def post_button(ctx: Context) -> Reply:
    text = ctx.state.get("last_unanswered") or ctx.state.get("last_query")
    if not text:
        return _ask_for_text(ctx)
    ctx.state.pop("last_unanswered", None)
    return await _post(ctx, text)


@router.command("ask", "提问", "提問", help=N_("Ask the community: %(word)s followed by your question"))
async def ask_command(ctx: Context) -> Reply:
    return await _post(ctx, ctx.args) if ctx.args else _ask_for_text(ctx)


@router.state("post")
async def post_text(ctx: Context) -> Reply:
    return await _post(ctx, ctx.args)


@router.command("questions", "问题", "問題", "大家问", help=N_("Open community questions"))
async def list_questions(ctx: Context) -> Reply:
    rows = await qa.open_questions(LIST_SIZE, exclude_member=ctx.member.id)
    if not rows:
        return Reply(
            text=ctx._("There are no open community questions right now. Thank you for offering to help!"),
            kind="questions",
        )
    return Reply(
        text=ctx._("Open questions from other members. Pick one to answer it:"),
        choices=[Choice(label=f"{q.code}: {q.text[:40]}", action=f"ans:{q.code}") for q in rows],
        kind="questions",
    )


async def _show(ctx: Context, code: str, *, to_answer: bool) -> Reply:
    q = await qa.by_code(code)
    if q is None or q.status in ("held", "rejected"):
        return Reply(text=ctx._("Sorry, I cannot find question %(code)s.", code=code), kind="error")
    answers = await qa.visible_answers(q.id)
    lines = [ctx._("Question %(code)s: %(text)s", code=q.code, text=q.text)]
    for a in answers[:3]:
        lines.append(ctx._("Answer (%(n)s helpful): %(text)s", n=a.helpful_count, text=a.text))
    choices: list[Choice] = []
    if q.member_id == ctx.member.id:
        choices = [
            Choice(label=ctx._("Accept: %(text)s", text=a.text[:30]), action=f"acc:{a.id}")
            for a in answers[:3]
            if q.status in ("open", "ticketed")
        ]
    else:
        choices = [
            Choice(label=ctx._("👍 Helpful: %(text)s", text=a.text[:30]), action=f"vote:{a.id}") for a in answers[:3]
        ]
        if to_answer and q.status in ("open", "ticketed"):
            ctx.state["await"] = "answer"
            ctx.state["answer_q"] = q.code
            lines.append(ctx._("Type your answer now:"))
    return Reply(text="\n\n".join(lines), choices=choices, kind="question")


@router.action("ans")
async def answer_button(ctx: Context) -> Reply:
    return await _show(ctx, ctx.args, to_answer=True)


@router.action("q")
@router.payload("q")
async def show_question(ctx: Context) -> Reply:
    return await _show(ctx, ctx.args, to_answer=False)


@router.state("answer")
async def answer_text(ctx: Context) -> Reply:
    code = ctx.state.pop("answer_q", "")
    ctx.state.pop("await", None)
    q = await qa.by_code(code)
    if q is None:
        return Reply(text=ctx._("Sorry, I cannot find question %(code)s.", code=code), kind="error")
    done = await qa.post_answer(ctx.services, ctx.member.id, ctx.channel, q, ctx.args)
    return _outcome(ctx, done.status, ANSWER_OUTCOMES)


def _outcome(ctx: Context, status: Status, outcomes: dict[Status, tuple[str, str]]) -> Reply:
    text, kind = outcome(status, outcomes)
    return Reply(text=ctx._(text), kind=kind)


async def _accept(ctx: Context, raw: str) -> Reply:
    if not raw.strip().isdigit():
        return Reply(text=ctx._("Which answer? Send for example: accept 12"), kind="error")
    status, _answer = await qa.accept(ctx.services, ctx.member.id, int(raw))
    return _outcome(ctx, status, ACCEPT_OUTCOMES)


@router.action("acc")
async def accept_button(ctx: Context) -> Reply:
    return await _accept(ctx, ctx.args)


@router.command("accept", "采纳", "採納", help=N_("Accept an answer"))
async def accept_command(ctx: Context) -> Reply:
    return await _accept(ctx, ctx.args)


@router.action("vote")
async def vote_button(ctx: Context) -> Reply:
    if not ctx.args.isdigit():
        return Reply(text=ctx._("Sorry, I did not understand that button."), kind="error")
    return _outcome(ctx, await qa.vote_helpful(ctx.services, ctx.member.id, int(ctx.args)), VOTE_OUTCOMES)


@router.action("unhelp")
async def not_helped(ctx: Context) -> Reply:
    """The asker says the answers did not help: hand the question to an agent now."""
    from community.qa.models import Question
    from handlers.human import hand_over

    q = await qa.by_code(ctx.args)
    if q is None or q.member_id != ctx.member.id:
        return Reply(text=ctx._("Sorry, I cannot find question %(code)s.", code=ctx.args), kind="error")
    await Question.filter(id=q.id, status="open").update(status="ticketed")
    reply = await hand_over(ctx, "unsatisfied", q.text, question_id=q.id)
    await Question.filter(id=q.id, ticket_id=None).update(ticket_id=ctx.extra.get("ticket"))
    return reply


@router.command("helper", "接收求助", help=N_("Receive questions you may know: %(word)s on, or %(word)s off to stop"))
async def helper_command(ctx: Context) -> Reply:
    arg = ctx.args.lower()
    off = arg in ("off", "关", "關", "0", "no", "stop")
    await qa.set_helper(ctx.member.id, not off)
    if off:
        return Reply(text=ctx._("OK, you will no longer receive help requests."), kind="helper")
    limit = ctx.services.settings.qa_helper_daily_limit
    return Reply(
        text=ctx._(
            "Thank you! We will send you questions you may know, at most %(n)s a day. Send “helper off” to stop.",
            n=limit,
        ),
        kind="helper",
    )


@router.command("answer", "回答", help=N_("Answer a community question: %(word)s CODE followed by your answer"))
async def answer_command(ctx: Context) -> Reply:
    if not ctx.args:
        return await list_questions(ctx)
    code, _, text = ctx.args.partition(" ")
    if text.strip():  # "answer CODE the answer" in one message (handy on SMS)
        ctx.state["answer_q"] = code
        ctx.args = text.strip()
        return await answer_text(ctx)
    return await _show(ctx, code, to_answer=True)
