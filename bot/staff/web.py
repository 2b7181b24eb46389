"""Login and logout pages for staff."""
from __future__ import annotations

from collections.abc import AsyncIterator

from aiohttp import web

from bot.settings import Settings
from bot.staff.auth import COOKIE, _digest, authenticate, require_role, set_cookie, start_session
from bot.staff.models import StaffSession
from bot.web import render


def _safe_next(target: str) -> str:
    # only local paths: never redirect to another site after login
    return target if target.startswith("/") and not target.startswith("//") else "/staff"


async def login_page(request: web.Request) -> web.Response:
    return render(request, "login.html", next=_safe_next(request.query.get("next", "/staff")), error=False)


async def login_submit(request: web.Request) -> web.Response:
    form = await request.post()
    username = str(form.get("username", "")).strip()[:64]
    password = str(form.get("password", ""))[:256]
    target = _safe_next(str(form.get("next", "/staff")))
    user = await authenticate(username, password) if username and password else None
    if user is None:
        return render(request, "login.html", status=401, next=target, error=True, username=username)
    token, _ = await start_session(user)
    resp = web.HTTPFound(target)
    set_cookie(resp, token, request)
    raise resp


@require_role()
async def logout(request: web.Request) -> web.Response:
    token = request.cookies.get(COOKIE, "")
    await StaffSession.filter(token_hash=_digest(token)).delete()
    resp = web.HTTPFound("/login")
    resp.del_cookie(COOKIE, path="/")
    raise resp


# staff landing page links: (path, label msgid, roles); features append their pages
STAFF_LINKS: list[tuple[str, str, tuple[str, ...]]] = []


@require_role()
async def staff_home(request: web.Request) -> web.Response:
    staff = request["staff"]
    links = [(p, label) for p, label, roles in STAFF_LINKS if not roles or staff.has_role(*roles)]
    return render(request, "staff_home.html", staff=staff, links=links, csrf_token=request["csrf_token"])


def setup(app: web.Application, settings: Settings) -> None:
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout)
    app.router.add_get("/staff", staff_home)
