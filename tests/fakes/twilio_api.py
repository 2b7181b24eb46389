"""A loopback Twilio-compatible Messages API for tests.

Speaks the real wire format: ``POST /2010-04-01/Accounts/{AccountSid}/Messages.json``
with HTTP basic auth (AccountSid:AuthToken) and a form body (To, From or
MessagingServiceSid, Body, StatusCallback); answers 201 with the message resource JSON,
or Twilio's error JSON (``{"code": 21211, "message": ..., "status": 400}``). It can
post a signed status callback back to the service, as Twilio does.
"""

from __future__ import annotations

import asyncio
import base64
import inspect
import itertools
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from sms_gateway.encoding import count_segments
from sms_gateway.twilio import signature

ACCOUNT_SID = "AC" + "0" * 32
AUTH_TOKEN = "test-auth-token-123"


@dataclass
class Sent:
    sid: str
    form: dict[str, str]


@dataclass
class FakeTwilio:
    account_sid: str = ACCOUNT_SID
    auth_token: str = AUTH_TOKEN
    sent: list[Sent] = field(default_factory=list)
    # queued failures: (http status, twilio code, message)
    failures: list[tuple[int, int, str]] = field(default_factory=list)
    unauthorized: int = 0
    _ids: itertools.count = field(default_factory=lambda: itertools.count(1))  # type: ignore[type-arg]
    _runner: web.AppRunner | None = None
    base_url: str = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/2010-04-01/Accounts/{sid}/Messages.json", self._create)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.base_url = f"http://127.0.0.1:{port}"
        return self.base_url

    async def stop(self) -> None:
        if self._runner:
            await self._runner.cleanup()

    def _authorized(self, request: web.Request, sid: str) -> bool:
        header = request.headers.get("Authorization", "")
        if not header.startswith("Basic "):
            return False
        user, _, password = base64.b64decode(header[6:]).decode().partition(":")
        return user == sid == self.account_sid and password == self.auth_token

    async def _create(self, request: web.Request) -> web.Response:
        sid = request.match_info["sid"]
        if not self._authorized(request, sid):
            self.unauthorized += 1
            return web.json_response({"code": 20003, "message": "Authenticate", "status": 401}, status=401)
        form = {k: v for k, v in (await request.post()).items() if isinstance(v, str)}
        if not form.get("To") or not (form.get("From") or form.get("MessagingServiceSid")):
            return web.json_response(
                {"code": 21604, "message": "A 'To' phone number is required.", "status": 400}, status=400
            )
        if "Body" not in form:
            return web.json_response({"code": 21602, "message": "Message body is required.", "status": 400}, status=400)
        if self.failures:
            status, code, message = self.failures.pop(0)
            headers = {"Retry-After": "1"} if status == 429 else {}
            return web.json_response(
                {"code": code, "message": message, "status": status}, status=status, headers=headers
            )
        message_sid = f"SM{next(self._ids):032x}"
        self.sent.append(Sent(message_sid, form))
        body: dict[str, Any] = {
            "sid": message_sid,
            "account_sid": sid,
            "to": form["To"],
            "from": form.get("From"),
            "body": form["Body"],
            "status": "queued",
            "num_segments": str(count_segments(form["Body"])),
            "direction": "outbound-api",
            "error_code": None,
            "error_message": None,
        }
        return web.json_response(body, status=201)

    async def status_callback(self, url: str, message_sid: str, status: str, *, error_code: str = "") -> int:
        """POST a signed delivery receipt to ``url`` like Twilio does; returns the HTTP status."""
        form = {"MessageSid": message_sid, "MessageStatus": status, "AccountSid": self.account_sid}
        if error_code:
            form["ErrorCode"] = error_code
        headers = {"X-Twilio-Signature": signature(self.auth_token, url, form.items())}
        async with aiohttp.ClientSession() as s:
            async with s.post(url, data=form, headers=headers) as resp:
                await resp.read()
                return resp.status


async def wait_for(predicate, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    """Poll an (async or sync) predicate until true; fail the test clearly if it never is."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout
    while True:
        result = predicate()
        if inspect.isawaitable(result):
            result = await result
        if result:
            return
        if loop.time() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.02)
