"""Who is on the other end of a request: the client's address and whether it came over https.

Per-IP limits, fingerprints and the ``Secure`` cookie flag ask here and nowhere else, so that
honouring a trusted proxy's forwarded headers is one decision in one place."""
from __future__ import annotations

import hashlib
import ipaddress

from aiohttp import web


def client_ip(request: web.Request) -> str:
    """The client's address as the server can vouch for it."""
    return request.remote or ""


def is_secure(request: web.Request) -> bool:
    """Whether the client reached us over https (cookies get ``Secure``)."""
    return request.secure


def _digest(secret: str, *parts: str) -> str:
    return hashlib.sha256("|".join((secret, *parts)).encode()).hexdigest()[:32]


def network_of(ip: str) -> str:
    """The client's network: IPv4 /24, IPv6 /64 (what one household or one script shares)."""
    try:
        addr = ipaddress.ip_address(ip)
    except ValueError:
        return ip[:64]
    prefix = 24 if addr.version == 4 else 64
    return str(ipaddress.ip_network(f"{addr}/{prefix}", strict=False))


def device_fingerprint(request: web.Request, secret: str) -> str:
    """The client's address and browser, hashed under the server secret (never stored in the
    clear): what a visitor who clears their cookies still looks like."""
    agent = hashlib.sha256(request.headers.get("User-Agent", "")[:400].encode()).hexdigest()
    return _digest(secret, "device", client_ip(request), agent)


def network_fingerprint(request: web.Request, secret: str) -> str:
    """The client's network (see :func:`network_of`), hashed under the server secret."""
    return _digest(secret, "network", network_of(client_ip(request)))
