"""Short-lived shared state behind small interfaces.

The in-process implementations here are the embedded default; ``bot.core.redis_stores``
implements the same protocols on Redis so several workers share them.
"""

from __future__ import annotations

import asyncio
from bot.core import jsoncodec
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, Protocol


def member_state_key(member_id: int) -> str:
    """The conversation-state key of a member (shared by the pipeline and the outbox)."""
    return f"member:{member_id}"


@dataclass(frozen=True, slots=True)
class Claim:
    """What a dedup claim found.

    ``owner``: this caller processes the message and holds ``token`` (renew the lease
    while working, then ``finish``); ``took_over`` says an earlier owner's lease had
    expired (it died mid-message). ``busy``: a live owner is processing it; its lease
    ends in ``lease_left`` seconds. ``done``: answered; ``result`` is the stored answer.
    """

    status: Literal["owner", "busy", "done"]
    token: str = ""
    result: str | None = None
    took_over: bool = False
    lease_left: float = 0.0


def new_token() -> str:
    """A fencing token: unique per claim, so a late owner cannot renew or finish another's."""
    return secrets.token_hex(12)


class DedupStore(Protocol):
    """Two states per message key: *processing* (an owner token and a short lease the
    owner renews while it works) and *done* (the stored answer, kept ``ttl`` seconds).

    A claim on a free key, or on one whose lease expired, makes the caller the owner
    (the latter takes the message over from a dead worker); a live lease answers
    ``busy``; a done key answers with the stored result.
    """

    async def claim(self, key: str, lease: float, ttl: int) -> Claim: ...
    async def renew(self, key: str, token: str, lease: float) -> bool: ...
    async def finish(self, key: str, token: str, result: str, ttl: int) -> bool: ...
    async def release(self, key: str, token: str) -> bool: ...
    async def wait_result(self, key: str, timeout: float) -> str | None: ...


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
    (a day of dedup keys is hundreds of thousands) on each message. ``max_entries`` also
    bounds it by count: past it, the least recently written entry goes, live or not (a
    day's TTL at a steady rate would otherwise hold millions)."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_entries: int | None = None) -> None:
        self._data: OrderedDict[str, tuple[float, Any]] = OrderedDict()
        self._clock = clock
        self.max_entries = max_entries
        self.evicted = 0  # live entries dropped for room

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
        if self.max_entries is not None and len(self._data) > self.max_entries:
            self._data.popitem(last=False)
            self.evicted += 1

    def pop(self, key: str) -> Any | None:
        hit = self._data.pop(key, None)
        return None if hit is None else hit[1]


@dataclass(slots=True)
class _Entry:
    token: str | None  # the owner while processing; None once done
    lease_until: float
    result: str | None = None
    done: asyncio.Event | None = None  # wakes waiters; dropped once answered or released


class MemoryDedupStore:
    """The in-process :class:`DedupStore` (one process: the embedded mode).

    Every entry is kept ``ttl`` seconds from its last write, whatever its state, so the
    TTL map's expiry order holds; a processing entry's lease is checked on each claim.
    At most ``max_entries`` are kept: a retry of a message whose entry was dropped for room
    still acts once, as the inbound transcript row (unique per channel and message id)
    holds the answer (bot.pipeline, "a retry whose dedup key is gone")."""

    def __init__(self, clock: Callable[[], float] = time.monotonic, max_entries: int | None = None) -> None:
        self._clock = clock
        self._claims = TTLMap(clock, max_entries)

    async def claim(self, key: str, lease: float, ttl: int) -> Claim:
        now = self._clock()
        entry: _Entry | None = self._claims.get(key)
        if entry is not None and entry.token is None:
            return Claim("done", result=entry.result)
        if entry is not None and entry.lease_until > now:
            return Claim("busy", lease_left=entry.lease_until - now)
        token = new_token()
        if entry is None:
            self._claims.set(key, _Entry(token, now + lease, done=asyncio.Event()), ttl)
            return Claim("owner", token=token)
        entry.token, entry.lease_until = token, now + lease
        return Claim("owner", token=token, took_over=True)

    async def renew(self, key: str, token: str, lease: float) -> bool:
        entry: _Entry | None = self._claims.get(key)
        if entry is None or entry.token != token:
            return False
        entry.lease_until = self._clock() + lease
        return True

    async def finish(self, key: str, token: str, result: str, ttl: int) -> bool:
        """Store the answer; refused when another owner took the message over."""
        entry: _Entry | None = self._claims.get(key)
        if entry is not None and entry.token != token:
            return False
        event = entry.done if entry is not None else None
        self._claims.set(key, _Entry(None, 0.0, result), ttl)  # a day of keys keeps no Event
        if event is not None:
            event.set()
        return True

    async def wait_result(self, key: str, timeout: float) -> str | None:
        """The stored answer, waiting up to ``timeout``; None when it is not there by then
        (still processing, released, or unknown): the caller claims again."""
        entry: _Entry | None = self._claims.get(key)
        if entry is None:
            return None
        if entry.token is not None and entry.done is not None:
            try:
                await asyncio.wait_for(entry.done.wait(), timeout)
            except asyncio.TimeoutError:
                return None
            entry = self._claims.get(key)
        return entry.result if entry is not None and entry.token is None else None

    async def release(self, key: str, token: str) -> bool:
        """Forget a claim whose processing failed, so the channel's retry is processed."""
        entry: _Entry | None = self._claims.get(key)
        if entry is None or entry.token != token:
            return False
        self._claims.pop(key)
        if entry.done is not None:
            entry.done.set()
        return True


class MemoryStateStore:
    """Conversation states in this process, at most ``max_entries`` members' (the least
    recently active member's state goes first: a pending numbered choice from long ago)."""

    def __init__(self, max_entries: int | None = None) -> None:
        self._data = TTLMap(max_entries=max_entries)

    async def get(self, key: str) -> dict[str, Any]:
        hit = self._data.get(key)
        return jsoncodec.loads(hit) if hit is not None else {}

    async def set(self, key: str, value: dict[str, Any], ttl: int) -> None:
        self._data.set(key, jsoncodec.dumps(value), ttl)

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
