"""Who a web chat visitor is: the server's signed session cookie, or the operator's verified user.

A web chat member is never chosen by the client. Either the server issued the visitor a
session (a random id in an HttpOnly, SameSite=Lax cookie, signed with HMAC-SHA256 under
``BOT_SECRET_KEY``), or the operator's site names its logged-in visitor with ``user`` +
``user_hash`` (hex HMAC-SHA256 of ``user`` under ``BOT_WEBCHAT_IDENTITY_SECRET``, as Chatwoot
and Intercom do it). The two map to separate external-id namespaces of the ``web`` channel
(``session/<id>`` and the operator's own name): ``/`` is not allowed in an operator's user
name, so a session and an operator user can never be the same account.

Both the web chat channel and feature views (``/api/v1/me``) ask here, and nowhere else."""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass
from typing import Mapping

from aiohttp import web

from bot.core.settings import Settings
from bot.web.client import set_cookie

COOKIE = "everycsr_chat"
COOKIE_MAX_AGE = 365 * 24 * 3600
SESSION_PREFIX = "session/"
USER_PATTERN = re.compile(r"^[A-Za-z0-9_.:@-]{1,64}$")
_SID = re.compile(r"^[A-Za-z0-9_-]{22,43}$")


class IdentityRefused(Exception):
    """A ``user`` was named without a valid ``user_hash`` (the operator's secret is set)."""


@dataclass(frozen=True)
class WebIdentity:
    """The web channel account a request speaks for; ``new_cookie`` is set on the response."""

    external_id: str
    kind: str  # "session" | "user"
    new_cookie: str | None = None


def _sign(secret_key: str, sid: str) -> str:
    return hmac.new(secret_key.encode(), f"webchat-session:{sid}".encode(), hashlib.sha256).hexdigest()[:32]


def session_cookie_value(secret_key: str, sid: str) -> str:
    return f"{sid}.{_sign(secret_key, sid)}"


def session_id_from_cookie(secret_key: str, value: str | None) -> str | None:
    """The session id of a cookie the server signed, else None (forged, truncated, other key)."""
    if not value or "." not in value:
        return None
    sid, _, sig = value.rpartition(".")
    if not _SID.match(sid) or not hmac.compare_digest(sig, _sign(secret_key, sid)):
        return None
    return sid


def user_hash(secret: str, user: str) -> str:
    """What the operator's server computes for its logged-in visitor ``user``."""
    return hmac.new(secret.encode(), user.encode(), hashlib.sha256).hexdigest()


def operator_external_id(user: str) -> str:
    return user  # USER_PATTERN has no "/": never a session's id


def session_external_id(sid: str) -> str:
    return SESSION_PREFIX + sid


def verified_user(settings: Settings, user: object, given_hash: object) -> str | None:
    """The operator's user when named with a valid hash; None when no user is named or the
    operator has no secret (then ``user`` is ignored). Raises :class:`IdentityRefused`."""
    secret = settings.webchat_identity_secret
    if not secret or user is None or user == "":
        return None
    if not isinstance(user, str) or not USER_PATTERN.match(user):
        raise IdentityRefused("user must be 1-64 letters, digits or _.:@-")
    if not isinstance(given_hash, str) or not hmac.compare_digest(given_hash.lower(), user_hash(secret, user)):
        raise IdentityRefused("user_hash does not match user")
    return user


def identify(
    request: web.Request, settings: Settings, fields: Mapping[str, object], *, create: bool
) -> WebIdentity | None:
    """The request's identity: a verified operator user, else the session cookie, else (with
    ``create``) a new session whose cookie the caller sets. Raises :class:`IdentityRefused`."""
    user = verified_user(settings, fields.get("user"), fields.get("user_hash"))
    if user is not None:
        return WebIdentity(operator_external_id(user), "user")
    sid = session_id_from_cookie(settings.secret_key, request.cookies.get(COOKIE))
    if sid is not None:
        return WebIdentity(session_external_id(sid), "session")
    if not create:
        return None
    sid = secrets.token_urlsafe(24)
    return WebIdentity(session_external_id(sid), "session", new_cookie=session_cookie_value(settings.secret_key, sid))


def set_session_cookie(response: web.StreamResponse, request: web.Request, identity: WebIdentity | None) -> None:
    """Send a newly issued session's cookie (HttpOnly, SameSite=Lax, Secure over https)."""
    if identity is None or identity.new_cookie is None:
        return
    set_cookie(response, request, COOKIE, identity.new_cookie, max_age=COOKIE_MAX_AGE)


async def session_member_id(request: web.Request, settings: Settings) -> int | None:
    """The member behind the visitor's web chat session cookie (pages outside the chat use
    it: a forward's opener, a community page's answerer); None for a visitor without one."""
    from bot.core.models import ChannelAccount

    sid = session_id_from_cookie(settings.secret_key, request.cookies.get(COOKIE))
    if sid is None:
        return None
    account = await ChannelAccount.get_or_none(channel="web", external_id=session_external_id(sid))
    return account.member_id if account else None


def member_csrf_token(request: web.Request, settings: Settings) -> str | None:
    """The form token of the visitor's web chat session (None without one): bound to the
    session cookie, so a page of another site can neither read nor forge it."""
    sid = session_id_from_cookie(settings.secret_key, request.cookies.get(COOKIE))
    if sid is None:
        return None
    return hmac.new(settings.secret_key.encode(), f"member-csrf:{sid}".encode(), hashlib.sha256).hexdigest()


def member_csrf_ok(request: web.Request, settings: Settings, sent: object) -> bool:
    """A member's form post carries its session's token (and, from a browser, no foreign Origin)."""
    expected = member_csrf_token(request, settings)
    from bot.web.cors import own_origin

    origin = request.headers.get("Origin")
    if origin is not None and not own_origin(request, settings, origin):
        return False
    return expected is not None and isinstance(sent, str) and hmac.compare_digest(sent, expected)
