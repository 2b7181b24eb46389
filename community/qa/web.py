"""The public community pages: open questions and one question with its answers.

Reading is public; the list is filtered, ordered and searched in SQL (``community.qa.listing``).
"""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from bot.core.i18n import N_
from community.qa import listing
from community.qa.models import Question
from community.qa.outcomes import ACCEPT_OUTCOMES, ANSWER_OUTCOMES, VOTE_OUTCOMES
from community.qa.service import normalize_code, visible_answers
from gamification.service import names_and_titles

TEMPLATES = Path(__file__).parent / "templates"
PAGE = 50


SHOW_LABELS = (("open", N_("Waiting")), ("answered", N_("Answered")), ("accepted", N_("Solved")), ("all", N_("All")))
# ?done=<what>-<status> after a member's form post (post, redirect, get): a fixed table, so
# the page never shows text taken from the address
DONE_MESSAGES: dict[str, str] = {
    f"{what}-{status.value}": msgid
    for what, table in (("answer", ANSWER_OUTCOMES), ("accept", ACCEPT_OUTCOMES), ("vote", VOTE_OUTCOMES))
    for status, (msgid, _kind) in table.items()
}
SORT_LABELS = (("unanswered", N_("Unanswered first")), ("newest", N_("Newest first")))


async def questions_page(request: web.Request) -> web.Response:
    from bot.web import page_gettext, render

    try:
        page = int(request.query.get("page", "1"))
    except ValueError:
        page = 1
    found = await listing.list_questions(
        listing.parse_show(request.query.get("show") or request.query.get("status")),
        listing.parse_sort(request.query.get("sort")),
        request.query.get("q", ""),
        min(page, 1000),
    )
    names = await names_and_titles(sorted({r.question.member_id for r in found.rows}), page_gettext(request))
    return render(request, "questions.html", listing=found, names=names, shows=SHOW_LABELS, sorts=SORT_LABELS)


async def render_question(
    request: web.Request, q: Question, *, status: int = 200, error: str | None = None, draft: str = ""
) -> web.Response:
    """The question page; a visitor signed in through the web chat gets the forms to answer,
    vote and accept (``community.qa.member_web``), anyone else a link to the chat."""
    from bot.core.app_keys import SERVICES
    from bot.web import page_gettext, render
    from bot.web.chat_session import member_csrf_token, session_member_id

    settings = request.app[SERVICES].settings
    answers = await visible_answers(q.id)
    names = await names_and_titles(sorted({q.member_id, *(a.member_id for a in answers)}), page_gettext(request))
    viewer = await session_member_id(request, settings)
    return render(
        request,
        "question.html",
        status=status,
        q=q,
        answers=answers,
        names=names,
        viewer=viewer,
        member_csrf=member_csrf_token(request, settings) if viewer else None,
        can_answer=q.status in ("open", "ticketed"),
        error=error,
        done=DONE_MESSAGES.get(request.query.get("done", "")),
        draft=draft,
    )


async def question_page(request: web.Request) -> web.Response:
    q = await Question.get_or_none(code=normalize_code(request.match_info["code"]))
    if q is None or q.status in ("held", "rejected"):
        raise web.HTTPNotFound(text="No such question.")
    return await render_question(request, q)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/questions", questions_page)
    app.router.add_get("/questions/{code}", question_page)
