"""Inbound limits of the web chat: per session (or operator user) and per client address.

The limits reserve a slot on the shared :class:`bot.core.stores.RateLimiter` (GCRA; in Redis across
workers), so a script cannot flood the pipeline from one session, nor from fresh sessions on
one address. A client that keeps sending while limited stays limited: each refused message
still takes a slot."""

from __future__ import annotations

from aiohttp import web

from bot.core.services import Services
from bot.core.settings import Settings
from bot.web.client import client_ip


async def inbound_allowed(services: Services, settings: Settings, request: web.Request, account: str | None) -> float:
    """0 when the message may go on, else the seconds to wait. Without ``account`` the
    address is checked, with it the session (or operator user)."""
    if account is None:
        rate, burst, key = (
            settings.webchat_rate_per_ip,
            settings.webchat_burst_per_ip,
            f"webchat:ip:{client_ip(request)}",
        )
    else:
        rate, burst, key = (
            settings.webchat_rate_per_session,
            settings.webchat_burst_per_session,
            f"webchat:acct:{account}",
        )
    if rate <= 0:
        return 0.0
    return await services.limiter.reserve(key, rate, max(1.0, burst))
