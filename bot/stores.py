"""Short-lived shared state behind small interfaces.

The in-process implementations here are the embedded default; ``bot.redis_stores``
implements the same protocols on Redis so several workers share them.
"""
from __future__ import annotations

import asyncio
import json
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
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


class TTLMap:
    """Entries that expire. Each write moves its key to the end, so with one TTL the order
    is expiry order and expired entries are dropped from the front, a couple per write:
    O(1) per operation and memory bounded by what is live, instead of scanning every entry
    (a day of dedup keys is hundreds of thousands) on each message."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._data: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._clock = clock

    def __len__(self) -> int:
        return len(self._data)

    def get(self, key: str) -> Any | None:
        hit = self._data.get(key)
        if hit is None or hit[0] < self._clock():
            return None
        return hit[1]

    def set(self, key: str, value: Any, ttl: float) -> None:
        now = self._clock()
        self._data[key] = (now + ttl, value)
        self._data.move_to_end(key)
        for _ in range(2):  # two drops per write outpace one insertion
            if not self._data:
                break
            oldest = next(iter(self._data))
            if self._data[oldest][0] >= now:
                break
            del self._data[oldest]

    def pop(self, key: str) -> Any | None:
        hit = self._data.pop(key, None)
        return None if hit is None else hit[1]


@dataclass(slots=True)
class _Claim:
    done: asyncio.Event | None  # wakes retries waiting for the first answer; dropped once answered
    result: str | None = None


class MemoryDedupStore:
    def __init__(self) -> None:
        self._claims = TTLMap()

    async def claim(self, key: str, ttl: int) -> bool:
        if self._claims.get(key) is not None:
            return False
        self._claims.set(key, _Claim(asyncio.Event()), ttl)
        return True

    async def store_result(self, key: str, result: str, ttl: int) -> None:
        claim = self._claims.get(key) or _Claim(None)
        claim.result = result
        if claim.done is not None:  # a day of keys need not each keep an Event
            claim.done.set()
            claim.done = None
        self._claims.set(key, claim, ttl)

    async def wait_result(self, key: str, timeout: float) -> str | None:
        claim = self._claims.get(key)
        if claim is None:
            return None
        if claim.result is None and claim.done is not None:
            try:
                await asyncio.wait_for(claim.done.wait(), timeout)
            except asyncio.TimeoutError:
                return None
        return claim.result

    async def release(self, key: str) -> None:
        """Forget a claim whose processing failed, so the channel's retry is processed."""
        claim = self._claims.pop(key)
        if claim is not None and claim.done is not None:
            claim.done.set()


class MemoryStateStore:
    def __init__(self) -> None:
        self._data = TTLMap()

    async def get(self, key: str) -> dict[str, Any]:
        hit = self._data.get(key)
        return json.loads(hit) if hit is not None else {}

    async def set(self, key: str, value: dict[str, Any], ttl: int) -> None:
        self._data.set(key, json.dumps(value, ensure_ascii=False), ttl)

    async def delete(self, key: str) -> None:
        self._data.pop(key)


class MemoryRateLimiter:
    """Token bucket (GCRA form): returns the delay until the reserved slot.

    A key's theoretical arrival time is forgotten once it has passed: from then on the key
    behaves exactly like one never seen, so memory holds only the keys paced right now
    (one per chat otherwise, for the life of the process)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._clock = clock
        self._tat = TTLMap(clock)

    async def reserve(self, key: str, rate: float, burst: float = 1.0) -> float:
        interval = 1.0 / rate
        now = self._clock()
        last = self._tat.get(key)
        tat = now if last is None else max(last, now)
        allow_at = tat - (burst - 1) * interval
        self._tat.set(key, tat + interval, ttl=tat + interval - now)
        return max(0.0, allow_at - now)

    def __len__(self) -> int:
        return len(self._tat)
