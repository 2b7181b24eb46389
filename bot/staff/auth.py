"""Staff login with argon2-hashed passwords, server-side sessions, CSRF tokens and roles.

Use ``@require_role("agent")`` on aiohttp handlers; the logged-in user is
``request["staff"]`` and the CSRF token for forms ``request["csrf_token"]``. Every
non-GET request from a session must carry the token (form field ``csrf_token`` or
header ``X-CSRF-Token``).

argon2 costs ~0.1-0.2 s of CPU per check on purpose; it runs in worker threads behind
:class:`HashGate` (a few at once, a bounded queue), never on the event loop, and an unknown
username is checked against a dummy hash so it costs the same as a known one.
"""

from __future__ import annotations

import asyncio
import functools
import hashlib
import hmac
import secrets
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any, TypeVar
from urllib.parse import quote

from aiohttp import web
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from bot.staff.models import ROLES, StaffSession, StaffUser
from bot.web import client

COOKIE = "everycsr_staff"
SESSION_TTL = timedelta(hours=12)
_hasher = PasswordHasher()
# verifying against a dummy hash keeps timing the same for unknown usernames
_DUMMY_HASH = _hasher.hash("not-a-real-password")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]
T = TypeVar("T")


class HashGateBusy(Exception):
    """Too many password checks are already waiting: answer 503 rather than queue for ever."""


class HashGate:
    """argon2 off the event loop: ``threads`` checks at once in worker threads, at most
    ``max_waiting`` in all (running or queued). One per application (its semaphore belongs
    to one loop)."""

    def __init__(self, threads: int = 2, max_waiting: int = 64) -> None:
        self._sem = asyncio.Semaphore(max(1, threads))
        self.max_waiting = max_waiting
        self.waiting = 0

    async def run(self, fn: Callable[..., T], *args: Any) -> T:
        if self.waiting >= self.max_waiting:
            raise HashGateBusy()
        self.waiting += 1
        try:
            async with self._sem:
                return await asyncio.to_thread(fn, *args)
        finally:
            self.waiting -= 1


def hash_password(password: str) -> str:
    return _hasher.hash(password)


def _verify(stored_hash: str, password: str) -> bool:
    try:
        return bool(_hasher.verify(stored_hash, password))
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


async def create_staff(username: str, password: str, roles: list[str], display_name: str = "") -> StaffUser:
    bad = [r for r in roles if r not in ROLES]
    if bad:
        raise ValueError(f"unknown role(s): {', '.join(bad)}; choose from {', '.join(ROLES)}")
    if len(password) < 8:
        raise ValueError("password must have at least 8 characters")
    password_hash = await asyncio.to_thread(hash_password, password)
    user = await StaffUser.get_or_none(username=username)
    if user:
        user.password_hash = password_hash
        user.roles = roles
        user.display_name = display_name or user.display_name
        user.active = True
        await user.save()
        # a new password ends every session of the old one (a leaked cookie dies with it)
        await end_sessions(user.id)
        return user
    return await StaffUser.create(
        username=username, password_hash=password_hash, roles=roles, display_name=display_name or username
    )


async def end_sessions(staff_id: int) -> int:
    """Log a staff user out everywhere."""
    return await StaffSession.filter(staff_id=staff_id).delete()


async def authenticate(username: str, password: str, gate: HashGate | None = None) -> StaffUser | None:
    """The active user with this password, else None; the same work for unknown usernames."""
    user = await StaffUser.get_or_none(username=username, active=True)
    stored = user.password_hash if user else _DUMMY_HASH
    ok = await (gate.run(_verify, stored, password) if gate else asyncio.to_thread(_verify, stored, password))
    return user if ok and user is not None else None


async def start_session(user: StaffUser) -> tuple[str, StaffSession]:
    token = secrets.token_urlsafe(32)
    session = await StaffSession.create(
        token_hash=_digest(token),
        staff=user,
        csrf_token=secrets.token_urlsafe(24),
        expires_at=datetime.now(timezone.utc) + SESSION_TTL,
    )
    await StaffUser.filter(id=user.id).update(last_login_at=datetime.now(timezone.utc))
    return token, session


async def session_for(request: web.Request) -> StaffSession | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    session = await StaffSession.get_or_none(token_hash=_digest(token)).select_related("staff")
    if session is None or session.expires_at < datetime.now(timezone.utc) or not session.staff.active:
        return None
    return session


def set_cookie(response: web.StreamResponse, token: str, request: web.Request) -> None:
    client.set_cookie(response, request, COOKIE, token, max_age=int(SESSION_TTL.total_seconds()))


async def check_csrf(request: web.Request, session: StaffSession) -> None:
    if request.method in ("GET", "HEAD", "OPTIONS"):
        return
    sent = request.headers.get("X-CSRF-Token", "")
    if not sent and request.content_type in ("application/x-www-form-urlencoded", "multipart/form-data"):
        sent = str((await request.post()).get("csrf_token", ""))
    if not sent or not hmac.compare_digest(sent, session.csrf_token):
        raise web.HTTPForbidden(text="CSRF token missing or invalid. Reload the page and try again.")


def require_role(*roles: str) -> Callable[[Handler], Handler]:
    """Login required; with roles, one of them (admin passes every check)."""

    def deco(handler: Handler) -> Handler:
        @functools.wraps(handler)
        async def wrapped(request: web.Request) -> web.StreamResponse:
            session = await session_for(request)
            if session is None:
                if request.method == "GET" and not request.path.startswith("/api/"):
                    raise web.HTTPFound(f"/login?next={quote(request.path_qs)}")
                raise web.HTTPUnauthorized(text="Login required.")
            if roles and not session.staff.has_role(*roles):
                raise web.HTTPForbidden(text="Your role does not allow this page.")
            await check_csrf(request, session)
            request["staff"] = session.staff
            request["csrf_token"] = session.csrf_token
            return await handler(request)

        return wrapped

    return deco
