"""``/staff/review``: one page for everything waiting on staff, of every kind, with filters.

Reviewers see the kinds they may decide (held content, contributions, learned phrasings);
admins also see member flags and reward orders, as on ``/admin/rewards``. Each row links to
its target's own page and is approved or rejected here with a note.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

from aiohttp import web

from bot.core.app_keys import SERVICES
from bot.core.i18n import N_
from bot.core.settings import Settings
from bot.staff import audit
from bot.staff.auth import require_role
from bot.web import add_staff_link, add_template_dir, render
from community.review import service
from community.review.models import KIND_LABELS, STATUS_LABELS, Kind, Status
from gamification.service import GAMIFICATION

TEMPLATES = Path(__file__).parent / "templates"
REVIEWERS = ("reviewer",)  # admin passes every role check


def _query(f: service.Filters) -> str:
    values = {
        "kind": f.kind,
        "status": "" if f.status == Status.PENDING.value else f.status,
        "age": str(f.older_than) if f.older_than else "",
    }
    return urlencode({k: v for k, v in values.items() if v})


async def _page(
    request: web.Request,
    f: service.Filters,
    *,
    error: str = "",
    error_args: dict[str, Any] | None = None,
    status: int = 200,
) -> web.Response:
    staff = request["staff"]
    await service.refresh()  # every kind, whoever reads: the queue is the same for all
    rows = await service.listing(staff, f)
    return render(
        request,
        "review_queue.html",
        status=status,
        staff=staff,
        csrf_token=request["csrf_token"],
        rows=rows,
        pages=await service.pages_of(rows),
        filters=f,
        back=_query(f),
        kinds=service.kinds_for(staff),
        kind_labels=KIND_LABELS,
        status_labels=STATUS_LABELS,
        statuses=list(Status),
        ages=service.AGES,
        handlers={k: service.handler(k) for k in Kind},
        error=error,
        error_args=error_args or {},
    )


@require_role(*REVIEWERS)
async def review_page(request: web.Request) -> web.Response:
    return await _page(request, service.parse_filters(request.query))


@require_role(*REVIEWERS)
async def review_decide(request: web.Request) -> web.Response:
    form = await request.post()
    back = service.parse_filters(dict(parse_qsl(str(form.get("back", ""))[:200])))
    rid = int(request.match_info["reviewable_id"])
    try:
        row = await service.decide(
            rid,
            str(form.get("decision", "")),
            request["staff"],
            str(form.get("note", "")),
            services=request.app[SERVICES],
            gamification=request.app[GAMIFICATION],
        )
    except service.ReviewError as exc:
        return await _page(request, back, error=exc.msgid, error_args=exc.params, status=exc.status)
    await audit.record(
        request, f"review.{row.status}", row.target_type, row.target_id, reviewable=row.id, kind=str(row.kind)
    )
    raise web.HTTPSeeOther("/staff/review" + (f"?{_query(back)}" if _query(back) else ""))


def setup(app: web.Application, settings: Settings) -> None:
    add_template_dir(app, TEMPLATES)
    add_staff_link(app, "/staff/review", N_("Review queue"), ("reviewer",))
    app.router.add_get("/staff/review", review_page)
    app.router.add_post(r"/staff/review/{reviewable_id:\d+}", review_decide)
