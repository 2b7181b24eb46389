"""Which pages may post to the service: its own origin, and (for the member APIs) the origins
the operator listed.

One place answers "is this request from our own pages": :func:`own_origin` compares the whole
origin (scheme, host and port) with the one the request came to (``https`` exactly when
:func:`bot.web.client.is_secure` says so) and ``BOT_PUBLIC_URL``'s; :func:`same_origin_post`
applies it to a form post's ``Origin`` (or ``Referer`` when a browser leaves ``Origin`` out).
An ``http://`` page of the same host cannot post into an ``https://`` service: a network
attacker can write that page.

The member APIs (web chat, ``/api/v1/me``): a request with an ``Origin`` that is neither the
service's own nor listed in ``BOT_WEBCHAT_ALLOWED_ORIGINS`` is refused (403); a listed origin
gets its preflight answered and ``Access-Control-Allow-Origin: <that origin>`` with
credentials, and nothing wider."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from urllib.parse import urlsplit

from aiohttp import web

from bot.core.app_keys import SERVICES
from bot.core.settings import Settings
from bot.web.client import is_secure

# headers an operator's page may send with a GET of the member APIs (never the query string:
# it ends up in access logs, browser history and Referer headers)
USER_HEADER = "X-Chat-User"
USER_HASH_HEADER = "X-Chat-User-Hash"


def json_error(status: int, message: str, **extra: object) -> web.Response:
    """Every JSON API error: ``{"error": message, ...extra}``."""
    return web.json_response({"error": message, **extra}, status=status)


def origin_of(url: str) -> str | None:
    """``scheme://host[:port]`` of ``url``, lower-cased; None when it has no scheme or host."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return None
    if parts.scheme not in ("http", "https") or not parts.netloc:
        return None
    return f"{parts.scheme}://{parts.netloc}".lower()


def own_origins(request: web.Request, settings: Settings) -> set[str]:
    """The service's own origins: the one this request reached (its real scheme) and the public URL's."""
    scheme = "https" if is_secure(request) else "http"
    own = {f"{scheme}://{request.host}".lower()}
    public = origin_of(settings.public_url) if settings.public_url else None
    if public:
        own.add(public)
    return own


def own_origin(request: web.Request, settings: Settings, origin: str) -> bool:
    """``origin`` is this service's own, scheme included (a member form on its own pages)."""
    return origin.strip().lower() in own_origins(request, settings)


def same_origin_post(request: web.Request, settings: Settings) -> bool:
    """A form post comes from the service's own pages, as far as the browser says: its
    ``Origin`` (``null`` is refused), else its ``Referer``; a client that sends neither is no
    browser carrying a victim's cookies (the form's CSRF token still has to match)."""
    origin = request.headers.get("Origin")
    if origin is not None:
        return own_origin(request, settings, origin)
    referer = request.headers.get("Referer")
    if referer:
        found = origin_of(referer)
        return found is not None and found in own_origins(request, settings)
    return True


def _origin_refused(request: web.Request, settings: Settings) -> bool:
    """A browser request from a page on another origin that the operator did not allow."""
    origin = request.headers.get("Origin")
    if origin is None:
        return False  # not a cross-origin browser request (curl, the operator's server)
    return not own_origin(request, settings, origin) and origin not in settings.webchat_origins


def _cors(request: web.Request, settings: Settings, response: web.StreamResponse) -> web.StreamResponse:
    origin = request.headers.get("Origin")
    if origin and origin in settings.webchat_origins:
        response.headers["Access-Control-Allow-Origin"] = origin
        response.headers["Access-Control-Allow-Credentials"] = "true"
        response.headers["Vary"] = "Origin"
    return response


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def cross_origin(handler: Handler) -> Handler:
    """Refuse other origins' pages unless allowed (403), and say so to the browser if allowed."""

    async def wrapped(request: web.Request) -> web.StreamResponse:
        settings = request.app[SERVICES].settings
        if _origin_refused(request, settings):
            return json_error(403, "this origin may not use the chat API")
        return _cors(request, settings, await handler(request))

    return wrapped


async def preflight(request: web.Request) -> web.Response:
    """CORS preflight: only for an allowed origin, credentials for that origin only."""
    settings = request.app[SERVICES].settings
    origin = request.headers.get("Origin", "")
    if origin not in settings.webchat_origins:
        return json_error(403, "this origin may not use the chat API")
    resp = web.Response(
        status=204,
        headers={
            "Access-Control-Allow-Methods": "GET, POST",
            "Access-Control-Allow-Headers": f"Content-Type, {USER_HEADER}, {USER_HASH_HEADER}",
            "Access-Control-Max-Age": "600",
        },
    )
    _cors(request, settings, resp)
    return resp
