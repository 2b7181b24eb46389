"""The public community pages: open questions and one question with its answers.

Reading is public; the list is filtered, ordered and searched in SQL (``community.qa.listing``).
"""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

from bot.i18n import N_
from community.qa import listing
from community.qa.models import Question
from community.qa.service import normalize_code, visible_answers
from gamification.service import names_and_titles

TEMPLATES = Path(__file__).parent / "templates"
PAGE = 50


SHOW_LABELS = (("open", N_("Waiting")), ("answered", N_("Answered")), ("accepted", N_("Solved")), ("all", N_("All")))
SORT_LABELS = (("unanswered", N_("Unanswered first")), ("newest", N_("Newest first")))


async def questions_page(request: web.Request) -> web.Response:
    from bot.web import page_gettext, render

    try:
        page = int(request.query.get("page", "1"))
    except ValueError:
        page = 1
    found = await listing.list_questions(listing.parse_show(request.query.get("show") or request.query.get("status")),
                                         listing.parse_sort(request.query.get("sort")),
                                         request.query.get("q", ""), min(page, 1000))
    names = await names_and_titles(sorted({r.question.member_id for r in found.rows}), page_gettext(request))
    return render(request, "questions.html", listing=found, names=names, shows=SHOW_LABELS, sorts=SORT_LABELS)


async def question_page(request: web.Request) -> web.Response:
    from bot.web import page_gettext, render

    q = await Question.get_or_none(code=normalize_code(request.match_info["code"]))
    if q is None or q.status in ("held", "rejected"):
        raise web.HTTPNotFound(text="No such question.")
    answers = await visible_answers(q.id)
    names = await names_and_titles(sorted({q.member_id, *(a.member_id for a in answers)}), page_gettext(request))
    return render(request, "question.html", q=q, answers=answers, names=names)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/questions", questions_page)
    app.router.add_get("/questions/{code}", question_page)
