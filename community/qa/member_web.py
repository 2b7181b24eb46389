"""A member answers, votes and accepts on the community question page.

The member is the visitor's web chat session (``bot.web.chat_session``), never a form field;
every post carries the session's CSRF token and goes through the same
``community.qa.service`` functions as the chat commands, so points, caps, moderation and
notifications are the same. Outcomes are told in the member's language: a redirect to the
page with a fixed message key, or the page again with the error and the draft kept."""

from __future__ import annotations

from aiohttp import web

from bot.core.app_keys import SERVICES
from bot.core.i18n import N_
from bot.web.chat_limits import inbound_allowed
from bot.web.chat_session import (
    COOKIE,
    member_csrf_ok,
    session_external_id,
    session_id_from_cookie,
    session_member_id,
)
from community.qa import service as qa
from community.qa.models import Answer, Question
from community.qa.outcomes import ANSWER_OUTCOMES
from community.qa.service import Status, normalize_code
from community.qa.web import render_question

CHANNEL = "web"
NO_SESSION = N_("Open the chat first to take part: the community knows you by your chat.")
STALE_FORM = N_("This form has expired. Please reload the page and try again.")
TOO_FAST = N_("You are sending messages too quickly. Please wait a moment and try again.")
EMPTY = N_("Please write your answer first.")
WHICH = N_("Sorry, that answer is no longer available.")
ANSWER_STATUS = {Status.BLOCKED: 422, Status.NOT_ALLOWED: 403, Status.CLOSED: 409}


def _done(q: Question, what: str, status: Status) -> web.Response:
    return web.Response(status=303, headers={"Location": f"/questions/{q.code}?done={what}-{status.value}"})


async def _checked(request: web.Request) -> tuple[Question, int, dict[str, str]] | web.Response:
    """The question, the session's member and the form, or the page again with the reason."""
    services = request.app[SERVICES]
    settings = services.settings
    q = await Question.get_or_none(code=normalize_code(request.match_info["code"]))
    if q is None or q.status in ("held", "rejected"):
        raise web.HTTPNotFound(text="No such question.")
    form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
    draft = form.get("text", "")[: qa.MAX_TEXT]
    member_id = await session_member_id(request, settings)
    if member_id is None:
        return await render_question(request, q, status=403, error=NO_SESSION, draft=draft)
    if not member_csrf_ok(request, settings, form.get("csrf_token")):
        return await render_question(request, q, status=403, error=STALE_FORM, draft=draft)
    sid = session_id_from_cookie(settings.secret_key, request.cookies.get(COOKIE))
    if sid and await inbound_allowed(services, settings, request, session_external_id(sid)):
        return await render_question(request, q, status=429, error=TOO_FAST, draft=draft)
    return q, member_id, form


def _answer_id(form: dict[str, str]) -> int | None:
    raw = form.get("answer_id", "")
    return int(raw) if raw.isascii() and raw.isdigit() and len(raw) < 12 else None


async def answer(request: web.Request) -> web.StreamResponse:
    checked = await _checked(request)
    if isinstance(checked, web.Response):
        return checked
    q, member_id, form = checked
    text = form.get("text", "").strip()[: qa.MAX_TEXT]
    if not text:
        return await render_question(request, q, status=400, error=EMPTY)
    # the same answer sent twice (a double click, a resent form) is posted once
    if await Answer.filter(question_id=q.id, member_id=member_id, text=text).exists():
        return _done(q, "answer", Status.OK)
    done = await qa.post_answer(request.app[SERVICES], member_id, CHANNEL, q, text)
    if done.status in ANSWER_STATUS:
        return await render_question(
            request, q, status=ANSWER_STATUS[done.status], error=ANSWER_OUTCOMES[done.status][0], draft=text
        )
    return _done(q, "answer", done.status)


async def vote(request: web.Request) -> web.StreamResponse:
    checked = await _checked(request)
    if isinstance(checked, web.Response):
        return checked
    q, member_id, form = checked
    answer_id = _answer_id(form)
    if answer_id is None or not await Answer.filter(id=answer_id, question_id=q.id).exists():
        return await render_question(request, q, status=400, error=WHICH)
    return _done(q, "vote", await qa.vote_helpful(request.app[SERVICES], member_id, answer_id))


async def accept(request: web.Request) -> web.StreamResponse:
    checked = await _checked(request)
    if isinstance(checked, web.Response):
        return checked
    q, member_id, form = checked
    answer_id = _answer_id(form)
    if answer_id is None or not await Answer.filter(id=answer_id, question_id=q.id).exists():
        return await render_question(request, q, status=400, error=WHICH)
    status, _answer = await qa.accept(request.app[SERVICES], member_id, answer_id)
    return _done(q, "accept", status)


def add_routes(app: web.Application) -> None:
    app.router.add_post("/questions/{code}/answer", answer)
    app.router.add_post("/questions/{code}/vote", vote)
    app.router.add_post("/questions/{code}/accept", accept)
