"""A loopback messaging provider that honours idempotency keys, and its channel sender.

The server is a real HTTP API on 127.0.0.1 in the style of providers that accept an
``Idempotency-Key`` header (Stripe-like, many SMS aggregators): ``POST /v1/messages``
with JSON ``{"to": ..., "text": ...}`` answers 201 ``{"id": ...}``; a repeated key gets
the first answer back and is *not* delivered again (``honour_keys=False``: every request
is delivered, as by a provider without keys). ``accepted`` counts every accepted request
per key, so a test sees the repeats the key absorbed. Tests script failures per message
(500, 429 + Retry-After, a stall past the client's timeout, 400) and read what was
delivered.

``ProviderSender`` is a channel sender the way a real adapter is written (aiohttp,
SendError mapping); ``setup`` registers it as channel ``prov`` so the production outbox
— in-process or the taskiq queue worker — sends through it. ``python -m
tests.fakes.channel_provider`` runs a queue worker with this channel added (for the
kill -9 test and the benchmark).
"""

from __future__ import annotations

import asyncio
import os
import time
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from bot.core.app_keys import SERVICES
from bot.core.channel_registry import SendError, SendResult
from bot.core.messages import Reply
from bot.core.settings import Settings

CHANNEL = "prov"
ENV_URL = "BOT_TEST_PROVIDER_URL"


@dataclass
class Provider:
    """State of the fake provider: scripted failures and what was delivered."""

    delay: float = 0.0
    # per "to" address: a list of actions consumed one per request: 500, 429, 400, "stall"
    script: dict[str, list[Any]] = field(default_factory=dict)
    delivered: dict[str, dict[str, Any]] = field(default_factory=dict)  # key -> message
    requests: Counter[str] = field(default_factory=Counter)  # key -> requests seen
    request_times: dict[str, list[float]] = field(default_factory=dict)
    by_pid: Counter[str] = field(default_factory=Counter)  # deliveries per sending process
    stall_seconds: float = 5.0
    # False: a provider without idempotency keys: every accepted request is a delivery
    honour_keys: bool = True
    accepted: Counter[str] = field(default_factory=Counter)  # key -> requests accepted (2xx)

    async def handle(self, request: web.Request) -> web.Response:
        body = await request.json()
        key = request.headers.get("Idempotency-Key") or f"nokey-{len(self.requests)}"
        self.requests[key] += 1
        self.request_times.setdefault(str(body.get("to")), []).append(time.monotonic())
        steps = self.script.get(str(body.get("to")))
        action = steps.pop(0) if steps else None
        if self.delay:
            await asyncio.sleep(self.delay)
        if action == "stall":  # the request arrived; the answer never comes in time
            await asyncio.sleep(self.stall_seconds)
        elif action == 500:
            return web.json_response({"error": "internal"}, status=500)
        elif action == 429:
            return web.json_response({"error": "slow down"}, status=429, headers={"Retry-After": "1"})
        elif action == 400:
            return web.json_response({"error": "invalid recipient"}, status=400)
        self.accepted[key] += 1
        if not self.honour_keys:
            key = f"{key}#{self.accepted[key]}"
        if key not in self.delivered:  # idempotent: a repeated key is answered, not re-delivered
            self.delivered[key] = {"to": body.get("to"), "text": body.get("text"), "id": f"m{len(self.delivered)}"}
            self.by_pid[request.headers.get("X-Sender-Pid", "")] += 1
        return web.json_response({"id": self.delivered[key]["id"]}, status=201)


async def start_provider(provider: Provider) -> tuple[web.AppRunner, str]:
    app = web.Application()
    app.router.add_post("/v1/messages", provider.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
    return runner, f"http://127.0.0.1:{port}"


class ProviderSender:
    name = CHANNEL
    rate_global: float | None = None
    rate_per_chat: float | None = None

    def __init__(self, base_url: str, timeout: float = 0.5) -> None:
        self.base_url = base_url
        self.timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def send(self, message: Any, reply: Reply, locale: str) -> SendResult:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self.timeout)
        headers = {"Idempotency-Key": f"outbox-{message.id}", "X-Sender-Pid": str(os.getpid())}
        try:
            async with self._session.post(
                f"{self.base_url}/v1/messages", json={"to": message.address, "text": reply.text}, headers=headers
            ) as resp:
                data = await resp.json(content_type=None)
                if resp.status == 429:
                    raise SendError("rate limited", retry_after=float(resp.headers.get("Retry-After", "1")))
                if resp.status >= 500:
                    raise SendError(f"provider error {resp.status}")
                if resp.status >= 400:
                    raise SendError(f"rejected: {data.get('error')}", permanent=True)
                return SendResult(provider_ref=str(data["id"]))
        except asyncio.TimeoutError as exc:
            # the request may have arrived; the idempotency key makes a retry safe
            raise SendError("provider timeout") from exc

    async def close(self) -> None:
        if self._session:
            await self._session.close()


def setup(app: web.Application, settings: Settings) -> None:
    """Channel module hook: register the sender when BOT_TEST_PROVIDER_URL is set."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        url = os.environ.get(ENV_URL)
        sender = ProviderSender(url) if url else None
        if sender:
            app[SERVICES].channels.register(sender)
        yield
        if sender:
            await sender.close()

    app.cleanup_ctx.append(ctx)


def main() -> None:
    """A queue worker with the provider channel added (test and benchmark helper)."""
    from bot.app import create_app
    from bot.core.logs import setup_logging
    from bot.core.settings import get_settings
    from bot.workers import serve_queue

    settings = get_settings()
    setup_logging(settings)
    app = create_app(settings)
    setup(app, settings)
    serve_queue(settings, app)


if __name__ == "__main__":
    main()
