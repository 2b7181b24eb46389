"""Who is on the other end of a request: the client's address and whether it came over https.

Per-IP limits, fingerprints and the ``Secure`` cookie flag ask here and nowhere else, so that
honouring a trusted proxy's forwarded headers is one decision in one place."""
from __future__ import annotations

from aiohttp import web


def client_ip(request: web.Request) -> str:
    """The client's address as the server can vouch for it."""
    return request.remote or ""


def is_secure(request: web.Request) -> bool:
    """Whether the client reached us over https (cookies get ``Secure``)."""
    return request.secure
