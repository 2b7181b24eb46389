"""Who is on the other end of a request: the client's address and whether it came over https.

Per-IP limits, fingerprints and the ``Secure`` cookie flag ask here and nowhere else, so that
honouring a trusted proxy's forwarded headers is one decision in one place.

``X-Forwarded-For`` / ``X-Forwarded-Proto`` are believed only when the TCP peer is one of
``BOT_TRUSTED_PROXIES`` (addresses or CIDRs): anybody else can write those headers. With a
chain of proxies the address list is walked from the right, past every trusted hop; the first
untrusted address is the client. :func:`forwarded_middleware` applies the answer with
aiohttp's own ``request.clone(remote=..., scheme=...)``, so ``request.remote`` and
``request.secure`` are true everywhere after it, including code that never calls here.
"""

from __future__ import annotations

import hashlib
import ipaddress
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

from aiohttp import web

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
_RESOLVED = "everycsr.client"  # request key: (client address, scheme, peer is a trusted proxy)
MAX_HOPS = 16  # forwarded addresses looked at, at most


class ProxyConfigError(ValueError):
    """BOT_TRUSTED_PROXIES holds something that is not an address or a CIDR."""


@lru_cache(maxsize=16)
def parse_networks(spec: str) -> tuple[IPNetwork, ...]:
    """``"127.0.0.1, 10.0.0.0/8"`` -> networks; raises :class:`ProxyConfigError` naming the bad part."""
    nets: list[IPNetwork] = []
    for part in spec.replace(";", ",").split(","):
        part = part.strip()
        if not part:
            continue
        try:
            nets.append(ipaddress.ip_network(part, strict=False))
        except ValueError:
            raise ProxyConfigError(f"BOT_TRUSTED_PROXIES: {part!r} is not an IP address or CIDR") from None
    return tuple(nets)


def _ip(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    text = text.strip()
    if text.startswith("[") and "]" in text:  # "[::1]:443"
        text = text[1 : text.index("]")]
    elif text.count(":") == 1:  # "1.2.3.4:5678"
        text = text.split(":", 1)[0]
    try:
        addr = ipaddress.ip_address(text)
    except ValueError:
        return None
    if isinstance(addr, ipaddress.IPv6Address) and addr.ipv4_mapped:
        return addr.ipv4_mapped
    return addr


def _trusted(addr: ipaddress.IPv4Address | ipaddress.IPv6Address | None, nets: Sequence[IPNetwork]) -> bool:
    return addr is not None and any(addr.version == n.version and addr in n for n in nets)


@dataclass(frozen=True, slots=True)
class Resolved:
    ip: str  # the client's address as far as we can vouch for it
    scheme: str  # "https" or "http", as the client reached the first trusted hop
    via_proxy: bool  # the TCP peer is a trusted proxy


def resolve(
    peer: str, forwarded_for: Sequence[str], forwarded_proto: str, scheme: str, nets: Sequence[IPNetwork]
) -> Resolved:
    """The pure decision, for the middleware and for tests.

    ``forwarded_for`` is every ``X-Forwarded-For`` value in order (one header or several);
    ``forwarded_proto`` the ``X-Forwarded-Proto`` value ("" when absent).
    """
    peer_addr = _ip(peer)
    if not _trusted(peer_addr, nets):
        return Resolved(peer, scheme, False)
    hops = [h.strip() for value in forwarded_for for h in value.split(",") if h.strip()][-MAX_HOPS:]
    client = str(peer_addr)
    for hop in reversed(hops):
        addr = _ip(hop)
        if addr is None:  # garbage from the client's side: stop at the last address we trust
            break
        client = str(addr)
        if not _trusted(addr, nets):
            break
    # the proto the first proxy saw (the leftmost value when proxies append)
    proto = forwarded_proto.split(",")[0].strip().lower()
    return Resolved(client, proto if proto in ("http", "https") else scheme, True)


def _settings(request: web.Request) -> Any:
    from bot.core.app_keys import SERVICES

    services = request.app.get(SERVICES)
    if services is not None:
        return services.settings
    from bot.core.settings import get_settings

    return get_settings()


def _resolved(request: web.Request) -> Resolved:
    found = request.get(_RESOLVED)
    if isinstance(found, Resolved):
        return found
    settings = _settings(request)
    found = resolve(
        request.remote or "",
        request.headers.getall("X-Forwarded-For", []),
        request.headers.get("X-Forwarded-Proto", ""),
        request.scheme,
        parse_networks(settings.trusted_proxies),
    )
    request[_RESOLVED] = found
    return found


def client_ip(request: web.Request) -> str:
    """The client's address as the server can vouch for it."""
    return _resolved(request).ip


def is_secure(request: web.Request) -> bool:
    """Whether the client reached us over https (cookies get ``Secure``, pages HSTS).

    Behind a trusted proxy of a deployment whose public URL is https, the answer is yes even
    when the proxy does not say ``X-Forwarded-Proto``: the browser saw https."""
    resolved = _resolved(request)
    if resolved.scheme == "https":
        return True
    return resolved.via_proxy and _settings(request).public_url.lower().startswith("https://")


def set_cookie(
    response: web.StreamResponse,
    request: web.Request,
    name: str,
    value: str,
    *,
    max_age: int | None = None,
    httponly: bool = True,
    samesite: str = "Lax",
    path: str = "/",
) -> None:
    """Every cookie the service sets: ``Secure`` whenever the client is on https."""
    response.set_cookie(
        name, value, max_age=max_age, httponly=httponly, samesite=samesite, path=path, secure=is_secure(request)
    )


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


@web.middleware
async def forwarded_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Make ``request.remote`` and ``request.secure`` the client's, through trusted proxies only."""
    resolved = _resolved(request)
    if resolved.via_proxy and (resolved.ip != request.remote or resolved.scheme != request.scheme):
        request = request.clone(remote=resolved.ip, scheme=resolved.scheme)
        request[_RESOLVED] = resolved
    return await handler(request)


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
