"""Which other sites' pages may call the member APIs (web chat, ``/api/v1/me``) from a browser.

A request with an ``Origin`` that is neither the service's own nor listed in
``BOT_WEBCHAT_ALLOWED_ORIGINS`` is refused (403); a listed origin gets its preflight answered
and ``Access-Control-Allow-Origin: <that origin>`` with credentials, and nothing wider."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.core.app_keys import SERVICES
from bot.core.settings import Settings
from bot.web.client import is_secure


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def _own_origins(request: web.Request, settings: Settings) -> set[str]:
    scheme = "https" if is_secure(request) else "http"
    own = {f"{scheme}://{request.host}", f"http://{request.host}", f"https://{request.host}"}
    if settings.public_url:
        own.add(settings.public_url.rstrip("/"))
    return own


def own_origin(request: web.Request, settings: Settings, origin: str) -> bool:
    """``origin`` is this service's own (a member form on its own pages)."""
    return origin in _own_origins(request, settings)


def _origin_refused(request: web.Request, settings: Settings) -> bool:
    """A browser request from a page on another origin that the operator did not allow."""
    origin = request.headers.get("Origin")
    if origin is None:
        return False  # not a cross-origin browser request (curl, the operator's server)
    return origin not in _own_origins(request, settings) and origin not in settings.webchat_origins


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
            "Access-Control-Allow-Headers": "Content-Type",
            "Access-Control-Max-Age": "600",
        },
    )
    _cors(request, settings, resp)
    return resp
