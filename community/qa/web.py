"""The public community pages: open questions and one question with its answers.

Reading is public; answering happens in the member's own channel (the page shows how),
because the web has no member identity here.
"""
from __future__ import annotations

from pathlib import Path

from aiohttp import web

from community.qa.models import Answer, Question
from community.qa.service import normalize_code, visible_answers

TEMPLATES = Path(__file__).parent / "templates"
PAGE = 50


async def questions_page(request: web.Request) -> web.Response:
    from bot.web import render

    status = request.query.get("status", "open")
    if status not in ("open", "accepted"):
        status = "open"
    rows = await Question.filter(status=status).order_by("-created_at").limit(PAGE)
    return render(request, "questions.html", questions=rows, status=status)


async def question_page(request: web.Request) -> web.Response:
    from bot.web import render

    q = await Question.get_or_none(code=normalize_code(request.match_info["code"]))
    if q is None or q.status in ("held", "rejected"):
        raise web.HTTPNotFound(text="No such question.")
    answers = await visible_answers(q.id)
    if answers:
        await Answer.fetch_for_list(answers, "member")  # each helper's display name
    return render(request, "question.html", q=q, answers=answers)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/questions", questions_page)
    app.router.add_get("/questions/{code}", question_page)
