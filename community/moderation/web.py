"""``/admin/moderation``: the review queue (approve/reject with a reason) and the watch list.

Approving or rejecting goes through the one review queue (``community.review.service``): the
same claim, audit and "already decided" as ``/staff/review``."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from aiohttp import web

from bot.staff import audit
from bot.staff.auth import require_role
from bot.core.i18n import N_
from bot.web import bad_request, render
from community.moderation import service
from community.moderation.matcher import PatternError
from community.moderation.models import ACTIONS, KINDS, ModerationAudit, ReviewItem, WatchedWord
from community.review import service as review
from community.review.models import Kind

TEMPLATES = Path(__file__).parent / "templates"
REVIEWERS = ("reviewer",)  # admin passes every role check


async def _page(
    request: web.Request, *, error: str = "", status: int = 200, error_args: dict[str, Any] | None = None
) -> web.Response:
    items = await ReviewItem.filter(status="pending").order_by("id").limit(100)
    words = await WatchedWord.filter(active=True).order_by("id")
    log = await ModerationAudit.all().order_by("-id").limit(50)
    return render(
        request,
        "moderation.html",
        status=status,
        staff=request["staff"],
        csrf_token=request["csrf_token"],
        items=items,
        words=words,
        log=log,
        kinds=KINDS,
        actions=ACTIONS,
        error=error,
        error_args=error_args or {},
    )


@require_role(*REVIEWERS)
async def moderation_page(request: web.Request) -> web.Response:
    return await _page(request)


@require_role(*REVIEWERS)
async def decide(request: web.Request) -> web.Response:
    raw = request.match_info["item_id"]
    form = await request.post()
    verdict = str(form.get("decision", ""))
    reason = str(form.get("reason", "")).strip()
    if not raw.isdigit() or verdict not in ("approve", "reject"):
        raise bad_request(request, N_("Choose approve or reject."))
    if verdict == "reject" and not reason:
        return await _page(request, error="reason", status=400)
    try:
        await review.decide_target(Kind.MODERATION_ITEM, int(raw), verdict, request["staff"], reason)
    except review.ReviewError as exc:  # already decided (409), no such item: said on the page
        return await _page(request, error=exc.msgid, error_args=exc.params, status=exc.status)
    item = await ReviewItem.get(id=int(raw))
    await audit.record(request, f"moderation.{verdict}", "review", item.id, member=item.member_id)
    raise web.HTTPSeeOther("/admin/moderation")


@require_role(*REVIEWERS)
async def add_word(request: web.Request) -> web.Response:
    form = await request.post()
    try:
        row = await service.add_word(
            str(form.get("pattern", "")),
            str(form.get("kind", "")),
            str(form.get("action", "")),
            replacement=str(form.get("replacement", "***")),
            note=str(form.get("note", "")),
            actor=f"staff:{request['staff'].username}",
        )
    except PatternError as exc:  # said in the reviewer's language
        return await _page(request, error=exc.msgid, error_args=exc.params, status=400)
    except ValueError as exc:
        return await _page(request, error=str(exc), status=400)
    await audit.record(
        request, "moderation.word_add", "word", row.id, pattern=row.pattern, kind=row.kind, word_action=row.action
    )
    raise web.HTTPSeeOther("/admin/moderation")


@require_role(*REVIEWERS)
async def remove_word(request: web.Request) -> web.Response:
    raw = request.match_info["word_id"]
    if raw.isdigit() and await service.remove_word(int(raw), actor=f"staff:{request['staff'].username}"):
        await audit.record(request, "moderation.word_remove", "word", int(raw))
    raise web.HTTPSeeOther("/admin/moderation")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/admin/moderation", moderation_page)
    app.router.add_post("/admin/moderation/items/{item_id}", decide)
    app.router.add_post("/admin/moderation/words", add_word)
    app.router.add_post("/admin/moderation/words/{word_id}/remove", remove_word)
