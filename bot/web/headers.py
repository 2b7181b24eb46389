"""Security headers on every response: CSP (with a per-request script nonce), framing,
sniffing, referrer, and HSTS when the client is on https.

Inline ``<script>`` in a template runs only with ``nonce="{{ csp_nonce }}"`` (``render``
passes it); scripts from ``/static`` need nothing. Staff pages may not be framed at all;
public pages only by this site.
"""

from __future__ import annotations

import secrets
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.web.client import is_secure

_NONCE = "everycsr.csp_nonce"
HSTS = "max-age=31536000"  # one year; no includeSubDomains: other hosts of the domain are not ours
# pages behind the staff login: never inside a frame (clickjacking of claim/reply/approve buttons)
STAFF_PREFIXES = ("/login", "/logout", "/staff", "/inbox", "/admin", "/dashboard")

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def csp_nonce(request: web.Request) -> str:
    """This request's script nonce (made on first use)."""
    nonce = request.get(_NONCE)
    if not isinstance(nonce, str):
        nonce = secrets.token_urlsafe(16)
        request[_NONCE] = nonce
    return nonce


def _is_staff(path: str) -> bool:
    return any(path == p or path.startswith(p + "/") for p in STAFF_PREFIXES)


def security_headers(request: web.Request) -> dict[str, str]:
    staff = _is_staff(request.path)
    ancestors = "'none'" if staff else "'self'"
    csp = "; ".join(
        [
            "default-src 'self'",
            f"script-src 'self' 'nonce-{csp_nonce(request)}'",
            "style-src 'self' 'unsafe-inline'",
            "img-src 'self' data: https:",
            "connect-src 'self'",
            "object-src 'none'",
            "base-uri 'self'",
            "form-action 'self'",
            f"frame-ancestors {ancestors}",
        ]
    )
    headers = {
        "Content-Security-Policy": csp,
        "X-Frame-Options": "DENY" if staff else "SAMEORIGIN",
        "X-Content-Type-Options": "nosniff",
        "Referrer-Policy": "same-origin",
    }
    if is_secure(request):
        headers["Strict-Transport-Security"] = HSTS
    return headers


def _apply(response: web.StreamResponse, headers: dict[str, str]) -> None:
    if response.prepared:  # streamed (SSE): its headers went out with prepare()
        return
    for name, value in headers.items():
        response.headers.setdefault(name, value)


@web.middleware
async def headers_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    try:
        response = await handler(request)
    except web.HTTPException as exc:  # redirects and errors raised by handlers
        _apply(exc, security_headers(request))
        raise
    _apply(response, security_headers(request))
    return response
