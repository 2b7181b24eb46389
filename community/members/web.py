"""Staff API for member tags: ``GET/POST /api/v1/staff/members/{member_id}/tags`` and
``DELETE /api/v1/staff/members/{member_id}/tags/{tag}``.

A staff session (cookie) with the agent or admin role; changes need the session's CSRF
token in ``X-CSRF-Token``. Bodies are JSON ``{"tag": "vip"}``; answers are
``{"member": id, "tags": [...], "changed": bool}``.
"""

from __future__ import annotations

import json

from aiohttp import web

from bot.core.app_keys import SERVICES
from bot.core.models import Member
from bot.staff.auth import require_role
from bot.web.lookup import path_id
from community.inbox import service as inbox
from community.members import tags as member_tags

ROLES = ("agent",)  # admin passes every role check
MAX_BODY = 4096


async def _member(request: web.Request) -> Member:
    member = await Member.get_or_none(id=path_id(request, "member_id", "member"))
    if member is None:
        raise web.HTTPNotFound(text=json.dumps({"error": "no such member"}), content_type="application/json")
    return member


def _error(status: type[web.HTTPException], message: str) -> web.HTTPException:
    return status(text=json.dumps({"error": message}), content_type="application/json")


async def _tag_from_body(request: web.Request) -> str:
    if request.content_length is not None and request.content_length > MAX_BODY:
        raise _error(web.HTTPRequestEntityTooLarge, "body too large")
    try:
        body = json.loads(await request.text())
    except (ValueError, UnicodeDecodeError):
        raise _error(web.HTTPBadRequest, 'send JSON: {"tag": "..."}') from None
    tag = body.get("tag") if isinstance(body, dict) else None
    if not isinstance(tag, str):
        raise _error(web.HTTPBadRequest, 'send JSON: {"tag": "..."}')
    return tag


async def _answer(member_id: int, changed: bool | None = None) -> web.Response:
    member = await Member.get(id=member_id)
    out: dict[str, object] = {"member": member.id, "tags": list(member.tags or [])}
    if changed is not None:
        out["changed"] = changed
    return web.json_response(out)


async def _change(request: web.Request, tag: str, add: bool) -> web.Response:
    member = await _member(request)
    try:
        changed = await member_tags.change_tag(
            member.id, tag, add=add, actor=f"staff:{request['staff'].username}", source="api"
        )
    except member_tags.TagError as exc:
        raise _error(web.HTTPBadRequest, str(exc)) from None
    if changed:  # a live ticket follows the member's VIP status
        await inbox.reprioritize(request.app[SERVICES], member.id)
    return await _answer(member.id, changed)


@require_role(*ROLES)
async def list_tags(request: web.Request) -> web.Response:
    return await _answer((await _member(request)).id)


@require_role(*ROLES)
async def add_tag(request: web.Request) -> web.Response:
    return await _change(request, await _tag_from_body(request), True)


@require_role(*ROLES)
async def remove_tag(request: web.Request) -> web.Response:
    return await _change(request, request.match_info["tag"], False)


def add_routes(app: web.Application) -> None:
    app.router.add_get("/api/v1/staff/members/{member_id}/tags", list_tags)
    app.router.add_post("/api/v1/staff/members/{member_id}/tags", add_tag)
    app.router.add_delete("/api/v1/staff/members/{member_id}/tags/{tag}", remove_tag)
