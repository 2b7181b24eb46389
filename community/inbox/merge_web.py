"""Agents and admins merge two members (Chatwoot's contact merge) and undo a merge.

The work is ``bot.core.identity.merge``: one transaction, audited in ``MemberMerge``, idempotent.
Pages need the agent role (admin passes); every POST carries the staff session's CSRF token."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from bot.core.app_keys import SERVICES
from bot.core.identity.merge import MergeError
from bot.core.identity.models import MemberMerge
from bot.core.models import ChannelAccount, Member
from bot.staff.auth import require_role
from bot.web import render

TEMPLATES = Path(__file__).parent / "templates"
AGENTS = ("agent",)


def _int(raw: object) -> int | None:
    text = str(raw or "").strip().lstrip("#")
    return int(text) if text.isdigit() and len(text) < 10 else None


async def _member(member_id: int | None) -> dict | None:
    if member_id is None:
        return None
    member = await Member.get_or_none(id=member_id)
    if member is None:
        return None
    accounts = await ChannelAccount.filter(member_id=member_id).order_by("channel")
    return {"member": member, "channels": sorted({a.channel for a in accounts})}


@require_role(*AGENTS)
async def merge_page(request: web.Request) -> web.Response:
    source_id, target_id = _int(request.query.get("source")), _int(request.query.get("target"))
    merges = await MemberMerge.all().order_by("-id").limit(30).select_related("source", "target")
    return render(
        request,
        "inbox_merge.html",
        staff=request["staff"],
        csrf_token=request["csrf_token"],
        source=await _member(source_id),
        target=await _member(target_id),
        source_id=source_id or "",
        target_id=target_id or "",
        merges=merges,
        flash=request.query.get("flash", ""),
        error=request.query.get("error", ""),
    )


@require_role(*AGENTS)
async def merge_post(request: web.Request) -> web.StreamResponse:
    form = await request.post()
    source_id, target_id = _int(form.get("source")), _int(form.get("target"))
    if (
        source_id is None
        or target_id is None
        or not await Member.exists(id=source_id)
        or not await Member.exists(id=target_id)
    ):
        raise web.HTTPSeeOther(f"/inbox/members/merge?error=unknown&source={source_id or ''}&target={target_id or ''}")
    try:
        record = await request.app[SERVICES].merger.merge(
            source_id, target_id, via="staff", actor=f"staff:{request['staff'].username}"
        )
    except MergeError:
        raise web.HTTPSeeOther(f"/inbox/members/merge?error=refused&source={source_id}&target={target_id}") from None
    raise web.HTTPSeeOther(f"/inbox/members/merge?flash=merged&m={record.id}")


@require_role(*AGENTS)
async def unmerge_post(request: web.Request) -> web.StreamResponse:
    merge_id = _int(request.match_info.get("merge_id"))
    if merge_id is None or not await MemberMerge.exists(id=merge_id):
        raise web.HTTPNotFound(text="No such merge.")
    try:
        await request.app[SERVICES].merger.unmerge(merge_id, actor=f"staff:{request['staff'].username}")
    except MergeError:
        raise web.HTTPSeeOther("/inbox/members/merge?error=unmerge") from None
    raise web.HTTPSeeOther("/inbox/members/merge?flash=unmerged")


def add_routes(app: web.Application) -> None:
    app.router.add_get("/inbox/members/merge", merge_page)
    app.router.add_post("/inbox/members/merge", merge_post)
    app.router.add_post(r"/inbox/members/merges/{merge_id:\d+}/unmerge", unmerge_post)
