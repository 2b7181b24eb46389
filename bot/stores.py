"""Short-lived shared state behind small interfaces.

The in-process implementations here are the embedded default; ``bot.redis_stores``
implements the same protocols on Redis so several workers share them.
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any, Protocol


def member_state_key(member_id: int) -> str:
    """The conversation-state key of a member (shared by the pipeline and the outbox)."""
    return f"member:{member_id}"


class DedupStore(Protocol):
    """Claims a message key once, and keeps the answer so retries get the same one."""

    async def claim(self, key: str, ttl: int) -> bool: ...
    async def store_result(self, key: str, result: str, ttl: int) -> None: ...
    async def wait_result(self, key: str, timeout: float) -> str | None: ...
    async def release(self, key: str) -> None: ...


class StateStore(Protocol):
    """Conversation state per member: pending choices, language, agent ownership."""

    async def get(self, key: str) -> dict[str, Any]: ...
    async def set(self, key: str, value: dict[str, Any], ttl: int) -> None: ...
    async def delete(self, key: str) -> None: ...


class RateLimiter(Protocol):
    """Token buckets keyed by name; ``acquire`` says how long to wait before sending."""

    async def reserve(self, key: str, rate: float, burst: float) -> float: ...


class MemoryDedupStore:
    def __init__(self) -> None:
        self._claims: dict[str, float] = {}
        self._results: dict[str, tuple[str, float]] = {}
        self._events: dict[str, asyncio.Event] = {}

    def _expire(self) -> None:
        if len(self._claims) < 10_000:
            return
        now = time.monotonic()
        for k in [k for k, exp in self._claims.items() if exp < now]:
            self._claims.pop(k, None)
            self._results.pop(k, None)
            self._events.pop(k, None)

    async def claim(self, key: str, ttl: int) -> bool:
        self._expire()
        now = time.monotonic()
        exp = self._claims.get(key)
        if exp is not None and exp > now:
            return False
        self._claims[key] = now + ttl
        self._events[key] = asyncio.Event()
        self._results.pop(key, None)
        return True

    async def store_result(self, key: str, result: str, ttl: int) -> None:
        self._results[key] = (result, time.monotonic() + ttl)
        event = self._events.get(key)
        if event:
            event.set()

    async def wait_result(self, key: str, timeout: float) -> str | None:
        hit = self._results.get(key)
        if hit:
            return hit[0]
        event = self._events.get(key)
        if event is None:
            return None
        try:
            await asyncio.wait_for(event.wait(), timeout)
        except asyncio.TimeoutError:
            return None
        hit = self._results.get(key)
        return hit[0] if hit else None

    async def release(self, key: str) -> None:
        """Forget a claim whose processing failed, so the channel's retry is processed."""
        self._claims.pop(key, None)
        event = self._events.pop(key, None)
        if event:
            event.set()


class MemoryStateStore:
    def __init__(self) -> None:
        self._data: dict[str, tuple[str, float]] = {}

    async def get(self, key: str) -> dict[str, Any]:
        hit = self._data.get(key)
        if not hit or hit[1] < time.monotonic():
            return {}
        return json.loads(hit[0])

    async def set(self, key: str, value: dict[str, Any], ttl: int) -> None:
        self._data[key] = (json.dumps(value, ensure_ascii=False), time.monotonic() + ttl)

    async def delete(self, key: str) -> None:
        self._data.pop(key, None)


class MemoryRateLimiter:
    """Token bucket (GCRA form): returns the delay until the reserved slot."""

    def __init__(self) -> None:
        self._tat: dict[str, float] = {}

    async def reserve(self, key: str, rate: float, burst: float = 1.0) -> float:
        interval = 1.0 / rate
        now = time.monotonic()
        tat = max(self._tat.get(key, now), now)
        allow_at = tat - (burst - 1) * interval
        self._tat[key] = tat + interval
        return max(0.0, allow_at - now)
