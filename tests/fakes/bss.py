"""A loopback account-query API speaking the wire format of ``community.account_queries``.

It checks the request signature (401 otherwise), knows a few query codes (404 for others),
answers from per-number accounts, and records every request so tests see whose number was
asked. ``down`` makes it answer 503."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from gamification.topup import verify

KNOWN = {"CXLL": "本月通用流量已用 %(used)s，剩余 %(left)s。", "CXYE": "当前话费余额 %(balance)s 元。"}


@dataclass
class FakeAccountApi:
    secret: str
    accounts: dict[str, dict[str, str]] = field(default_factory=dict)
    requests: list[dict[str, Any]] = field(default_factory=list)
    bad_signatures: int = 0
    down: bool = False
    url: str = ""
    _runner: web.AppRunner | None = None

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/account-queries", self._query)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = self._runner.addresses[0][1]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    async def _query(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(
            self.secret, request.headers.get("X-Timestamp", ""), body, request.headers.get("X-Signature", "")
        ):
            self.bad_signatures += 1
            return web.json_response({"error": "bad signature"}, status=401)
        data = json.loads(body)
        self.requests.append(data)
        if self.down:
            return web.json_response({"error": "maintenance"}, status=503)
        template = KNOWN.get(data.get("code", ""))
        if template is None:
            return web.json_response({"error": "unknown code"}, status=404)
        account = self.accounts.get(data.get("phone", ""), {"used": "0GB", "left": "0GB", "balance": "0.00"})
        return web.json_response({"text": template % account})
