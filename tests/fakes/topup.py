"""A loopback top-up provider speaking the wire format of ``gamification.topup``.

It verifies the request signature, answers ``{"provider_ref", "status": "accepted"}``
(the same ``order_id`` again gets the same ref, as real providers dedup), and then
posts the signed outcome to the order's ``callback_url``: ``failed`` for numbers in
``fail_numbers``, ``success`` otherwise. ``refuse_numbers`` get a 400 at submission.
``silent_numbers``: accepted, no callback, the status stays ``processing`` until a test sets
``orders[id]["state"]``; ``lost_callback_numbers``: topped up but the callback never arrives.
``unavailable`` makes the next n submissions answer 503. ``GET /v1/topups/<order_id>`` (signed)
answers the order's state, or 404 for one never received.
"""

from __future__ import annotations

import asyncio
import json
import time
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from gamification.topup import sign, verify


@dataclass
class FakeTopupProvider:
    secret: str
    fail_numbers: set[str] = field(default_factory=set)
    refuse_numbers: set[str] = field(default_factory=set)
    silent_numbers: set[str] = field(default_factory=set)
    lost_callback_numbers: set[str] = field(default_factory=set)
    unavailable: int = 0
    status_queries: int = 0
    orders: dict[str, dict[str, Any]] = field(default_factory=dict)
    submissions: int = 0
    callbacks: list[tuple[int, dict[str, Any]]] = field(default_factory=list)
    bad_signatures: int = 0
    _runner: web.AppRunner | None = None
    _tasks: set[asyncio.Task[None]] = field(default_factory=set)
    url: str = ""

    async def start(self) -> str:
        app = web.Application()
        app.router.add_post("/v1/topups", self._submit)
        app.router.add_get("/v1/topups/{order_id}", self._status)
        self._runner = web.AppRunner(app)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self.url

    async def stop(self) -> None:
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._runner:
            await self._runner.cleanup()

    async def _submit(self, request: web.Request) -> web.Response:
        body = await request.read()
        if not verify(
            self.secret, request.headers.get("X-Timestamp", ""), body, request.headers.get("X-Signature", "")
        ):
            self.bad_signatures += 1
            return web.json_response({"error": "bad signature"}, status=401)
        order = json.loads(body)
        self.submissions += 1
        if self.unavailable > 0:
            self.unavailable -= 1
            return web.json_response({"error": "try again"}, status=503)
        if order["phone"] in self.refuse_numbers:
            return web.json_response({"error": "number not supported"}, status=400)
        known = self.orders.get(order["order_id"])
        if known is None:
            failed = order["phone"] in self.fail_numbers
            known = self.orders[order["order_id"]] = {
                **order,
                "provider_ref": f"TP{len(self.orders) + 1:06d}",
                "state": "processing" if order["phone"] in self.silent_numbers else "failed" if failed else "success",
            }
            if order["phone"] in self.silent_numbers | self.lost_callback_numbers:
                return web.json_response({"provider_ref": known["provider_ref"], "status": "accepted"})
            task = asyncio.create_task(self._callback(known))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return web.json_response({"provider_ref": known["provider_ref"], "status": "accepted"})

    async def _status(self, request: web.Request) -> web.Response:
        order_id = request.match_info["order_id"]
        signed = f"GET /v1/topups/{order_id}".encode()
        if not verify(
            self.secret, request.headers.get("X-Timestamp", ""), signed, request.headers.get("X-Signature", "")
        ):
            self.bad_signatures += 1
            return web.json_response({"error": "bad signature"}, status=401)
        self.status_queries += 1
        known = self.orders.get(order_id)
        if known is None:
            return web.json_response({"error": "unknown order"}, status=404)
        return web.json_response(
            {
                "order_id": order_id,
                "provider_ref": known["provider_ref"],
                "status": known["state"],
                "reason": "carrier rejected" if known["state"] == "failed" else "",
            }
        )

    async def _callback(self, order: dict[str, Any]) -> None:
        await asyncio.sleep(0.01)
        failed = order["phone"] in self.fail_numbers
        payload = {
            "order_id": order["order_id"],
            "provider_ref": order["provider_ref"],
            "status": "failed" if failed else "success",
            "reason": "carrier rejected" if failed else "",
        }
        body = json.dumps(payload).encode()
        ts = str(int(time.time()))
        headers = {"Content-Type": "application/json", "X-Timestamp": ts, "X-Signature": sign(self.secret, ts, body)}
        async with aiohttp.ClientSession() as s:
            async with s.post(order["callback_url"], data=body, headers=headers) as resp:
                self.callbacks.append((resp.status, payload))
