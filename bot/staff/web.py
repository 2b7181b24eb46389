"""Login and logout pages for staff.

The login form is guarded like the pages behind it: a CSRF token bound to a cookie set
with the form (a browser must send it back; another site can neither read nor forge it),
a throttle per account and per client address (:mod:`bot.staff.throttle`), password
checks off the event loop (:class:`bot.staff.auth.HashGate`), a fresh session on every
login (the old cookie's session is deleted), and an audit line for each outcome.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from collections.abc import Coroutine
from typing import Any

from aiohttp import web

from bot.core.app_keys import SERVICES
from bot.core.i18n import N_
from bot.core.metrics import SECURITY_REFUSALS
from bot.core.settings import Settings
from bot.core.tasks import Background
from bot.staff import audit
from bot.staff.auth import (
    COOKIE,
    HashGate,
    HashGateBusy,
    _digest,
    authenticate,
    require_role,
    set_cookie,
    start_session,
)
from bot.staff.models import StaffSession, StaffUser
from bot.staff.throttle import LoginThrottle
from bot.web import add_staff_link, page_kit, render
from bot.web.client import client_ip
from bot.web.client import set_cookie as set_client_cookie
from bot.web.cors import same_origin_post
from bot.web.urls import safe_local_path

LOGIN_CSRF_COOKIE = "everycsr_login"
HASH_GATE: "web.AppKey[HashGate]" = web.AppKey("staff_hash_gate")


def _safe_next(target: str) -> str:
    # only local paths: never redirect to another site after login (bot/web/urls.py)
    return safe_local_path(target, "/staff")


def _form_token(secret: str, cookie_token: str) -> str:
    return hmac.new(secret.encode(), b"login|" + cookie_token.encode(), hashlib.sha256).hexdigest()


def _settings(request: web.Request) -> Settings:
    return request.app[SERVICES].settings


def _login_form(
    request: web.Request,
    *,
    status: int = 200,
    error: str = "",
    next_: str = "/staff",
    username: str = "",
    minutes: int = 0,
) -> web.Response:
    """The form with a fresh CSRF pair: the token in the page, its key in a cookie."""
    cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not (20 <= len(cookie_token) <= 64):
        cookie_token = secrets.token_urlsafe(24)
    resp = render(
        request,
        "login.html",
        status=status,
        next=next_,
        error=error,
        username=username,
        minutes=minutes,
        csrf_token=_form_token(_settings(request).secret_key, cookie_token),
    )
    set_client_cookie(resp, request, LOGIN_CSRF_COOKIE, cookie_token, max_age=3600, samesite="Strict")
    resp.headers["Cache-Control"] = "no-store"
    return resp


def _origin_ok(request: web.Request) -> bool:
    """The browser's ``Origin`` / ``Referer``, when sent, names this site (scheme included)."""
    return same_origin_post(request, _settings(request))


def _from_browser(request: web.Request) -> bool:
    """Browsers (the only way a login CSRF reaches a victim) say where a form post comes from."""
    return "Origin" in request.headers or "Sec-Fetch-Site" in request.headers


def _csrf_ok(request: web.Request, sent: str) -> bool:
    if not _origin_ok(request):
        return False
    if not _from_browser(request):  # scripts and API clients have no ambient session to abuse
        return True
    cookie_token = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not cookie_token or not sent:
        return False
    return hmac.compare_digest(sent, _form_token(_settings(request).secret_key, cookie_token))


_background = Background("staff")


def _spawn(coro: Coroutine[Any, Any, None]) -> None:
    _background.spawn(coro)


async def _audit_failure(username: str, ip: str, locked_now: bool) -> None:
    """A failed login of an existing account (unknown names are not logged: a flood of them
    would fill the table; the throttle counts them all the same)."""
    known = await StaffUser.get_or_none(username=username)
    if known is not None:
        await audit.record(
            None, "login.locked" if locked_now else "login.failed", "staff", known.id, staff=known, ip=ip
        )


async def login_page(request: web.Request) -> web.Response:
    return _login_form(request, next_=_safe_next(request.query.get("next", "/staff")))


async def login_submit(request: web.Request) -> web.Response:
    form = await request.post()
    username = str(form.get("username", "")).strip()[:64]
    password = str(form.get("password", ""))[:256]
    target = _safe_next(str(form.get("next", "/staff")))
    if not _csrf_ok(request, str(form.get("csrf_token", ""))):
        SECURITY_REFUSALS.labels("login_csrf").inc()
        return _login_form(request, status=403, error="csrf", next_=target, username=username)
    settings = _settings(request)
    throttle = LoginThrottle.from_settings(request.app[SERVICES].nonces, settings)
    ip = client_ip(request)
    attempt = await throttle.attempt(username, ip)
    if not attempt.allowed:
        SECURITY_REFUSALS.labels("login_locked").inc()
        resp = _login_form(
            request, status=429, error="locked", next_=target, username=username, minutes=throttle.minutes
        )
        resp.headers["Retry-After"] = str(settings.login_lockout_seconds)
        return resp
    try:
        user = await authenticate(username, password, request.app[HASH_GATE]) if username and password else None
    except HashGateBusy:
        SECURITY_REFUSALS.labels("login_busy").inc()
        resp = _login_form(request, status=503, error="busy", next_=target, username=username)
        resp.headers["Retry-After"] = "5"
        return resp
    if user is None:
        if username:  # logged after the answer: its timing must not tell known names from unknown ones
            _spawn(_audit_failure(username, ip, attempt.last))
        return _login_form(request, status=401, error="wrong", next_=target, username=username)
    await throttle.succeeded(username, ip)
    old = request.cookies.get(COOKIE)
    if old:  # session rotation: whatever session this browser had is over
        await StaffSession.filter(token_hash=_digest(old)).delete()
    token, _ = await start_session(user)
    await audit.record(request, "login", "staff", user.id, staff=user)
    resp = web.HTTPFound(target)
    set_cookie(resp, token, request)
    resp.del_cookie(LOGIN_CSRF_COOKIE, path="/")
    raise resp


@require_role()
async def logout(request: web.Request) -> web.Response:
    token = request.cookies.get(COOKIE, "")
    await StaffSession.filter(token_hash=_digest(token)).delete()
    await audit.record(request, "logout", "staff", request["staff"].id)
    resp = web.HTTPFound("/login")
    resp.del_cookie(COOKIE, path="/")
    raise resp


@require_role()
async def staff_home(request: web.Request) -> web.Response:
    staff = request["staff"]
    links = [(p, label) for p, label, roles in page_kit(request.app).staff_links if not roles or staff.has_role(*roles)]
    return render(request, "staff_home.html", staff=staff, links=links, csrf_token=request["csrf_token"])


@require_role("admin")
async def audit_page(request: web.Request) -> web.Response:
    target_type = request.query.get("target_type", "").strip()[:24]
    target_id = request.query.get("target_id", "").strip()[:64]
    rows = await audit.recent(300, target_type=target_type, target_id=target_id)
    return render(
        request,
        "staff_audit.html",
        staff=request["staff"],
        rows=rows,
        target_type=target_type,
        target_id=target_id,
        csrf_token=request["csrf_token"],
    )


def setup(app: web.Application, settings: Settings) -> None:
    app[HASH_GATE] = HashGate(settings.password_hash_threads)
    add_staff_link(app, "/admin/audit", N_("Audit log"), ("admin",))
    app.router.add_get("/admin/audit", audit_page)
    app.router.add_get("/login", login_page)
    app.router.add_post("/login", login_submit)
    app.router.add_post("/logout", logout)
    app.router.add_get("/staff", staff_home)
