"""Shared helpers for the community / inbox tests: chatting, staff login, CSRF tokens."""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from bot.core.models import OutboxMessage
from bot.staff.auth import create_staff

PASSWORD = "secret-pass-1"
IDENTITY_SECRET = "test-webchat-identity-secret"  # conftest.make_settings sets it
NO_ANSWER = "我家的猫为什么总是半夜唱京剧"


def user_hash(user: str) -> str:
    """The operator's proof that ``user`` is their logged-in visitor (identity verification)."""
    return hmac.new(IDENTITY_SECRET.encode(), user.encode(), hashlib.sha256).hexdigest()


def as_member(user: str) -> dict[str, str]:
    """The JSON fields that name a web chat member the server can verify."""
    return {"user": user, "user_hash": user_hash(user)}


async def chat(client: Any, user: str, **body: Any) -> list[dict]:
    """One web chat message from the verified member ``user``."""
    resp = await client.post("/api/v1/chat", json={**as_member(user), **body})
    assert resp.status == 200, await resp.text()
    return (await resp.json())["replies"]


async def staff_login(client: Any, username: str, roles: list[str]) -> None:
    await create_staff(username, PASSWORD, roles)
    resp = await client.post(
        "/login", data={"username": username, "password": PASSWORD, "next": "/staff"}, allow_redirects=False
    )
    assert resp.status == 302, await resp.text()


async def csrf(client: Any, path: str) -> tuple[str, str]:
    """The page's HTML and its CSRF token."""
    resp = await client.get(path)
    assert resp.status == 200, await resp.text()
    html = await resp.text()
    m = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert m, "no csrf token on " + path
    return html, m.group(1)


async def wait_sent(**filters: Any) -> OutboxMessage:
    """The outbox row once the worker has sent it (the web chat sender stores delivery)."""
    deadline = asyncio.get_running_loop().time() + 10.0  # generous: a loaded CI machine
    while True:
        row = await OutboxMessage.filter(**filters).order_by("-id").first()
        if row is not None and row.status == "sent":
            return row
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"not sent: {filters} -> {row and row.status}")
        await asyncio.sleep(0.02)


@asynccontextmanager
async def two_workers() -> AsyncIterator[tuple[Any, Any]]:
    """Two knowledge services loaded from one database, following each other on an
    in-process fan-out: what two worker processes do over Redis."""
    from bot.core.fanout import MemoryFanout
    from community.knowledge import KnowledgeService

    a, b = KnowledgeService(), KnowledgeService()
    await a.load()
    await b.load()
    fanout = MemoryFanout()
    tasks = [asyncio.create_task(a.follow(fanout)), asyncio.create_task(b.follow(fanout))]
    await asyncio.sleep(0.05)
    try:
        yield a, b
    finally:
        for t in tasks:
            t.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
