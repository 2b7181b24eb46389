"""Short-lived security keys: one-time nonces and failure counters, in-process or in Redis.

Two jobs, one store: a webhook's ``(timestamp, nonce)`` may be used once within its
signature window (:meth:`first_use`), and login failures are counted per account and per
client address over a window (:meth:`count` / :meth:`incr` / :meth:`reset`). With several
workers the counts and nonces must be shared, so production (``BOT_REDIS_URL``) keeps them in
Redis; the embedded default keeps them in this process.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Protocol

from bot.core.stores import TTLMap

if TYPE_CHECKING:
    from redis.asyncio import Redis


PREFIX = "everycsr:sec:"
# DECR only a live counter (a plain DECR on an expired key would make one without an expiry)
_DECR_EXISTING = """
local v = redis.call('GET', KEYS[1])
if not v then return 0 end
if tonumber(v) <= 0 then return 0 end
return redis.call('DECR', KEYS[1])
"""


class NonceStore(Protocol):
    """What security checks need from a shared, expiring key store."""

    async def first_use(self, key: str, ttl: float) -> bool:
        """True the first time ``key`` is seen within ``ttl`` seconds, False on every repeat."""
        ...

    async def incr(self, key: str, ttl: float) -> int:
        """Add one to a counter that expires ``ttl`` seconds after its first increment."""
        ...

    async def decr(self, key: str) -> int:
        """Take one back (never below zero, never creating the counter)."""
        ...

    async def count(self, key: str) -> int: ...

    async def reset(self, key: str) -> None: ...

    async def close(self) -> None: ...


class MemoryNonceStore:
    """One process: expiring entries, bounded by what is live."""

    def __init__(self, clock: Callable[[], float] = time.monotonic) -> None:
        self._seen = TTLMap(clock)
        self._counts = TTLMap(clock)

    async def first_use(self, key: str, ttl: float) -> bool:
        if self._seen.get(key) is not None:
            return False
        self._seen.set(key, True, ttl)
        return True

    async def incr(self, key: str, ttl: float) -> int:
        # the window starts at the first failure: a slow drip of attempts cannot keep it open forever
        entry = self._counts.get(key)
        if entry is None:
            self._counts.set(key, [1], ttl)
            return 1
        entry[0] += 1
        return int(entry[0])

    async def decr(self, key: str) -> int:
        entry = self._counts.get(key)
        if entry is None:
            return 0
        entry[0] = max(0, entry[0] - 1)
        return int(entry[0])

    async def count(self, key: str) -> int:
        entry = self._counts.get(key)
        return int(entry[0]) if entry else 0

    async def reset(self, key: str) -> None:
        self._counts.pop(key)

    async def close(self) -> None:
        return None


class RedisNonceStore:
    """Every worker: ``SET NX PX`` for nonces, ``SET NX PX`` + ``INCR`` for counters."""

    def __init__(self, redis: "Redis", prefix: str = PREFIX, *, owned: bool = False) -> None:
        self.redis = redis
        self.prefix = prefix
        self._owned = owned

    async def first_use(self, key: str, ttl: float) -> bool:
        return bool(await self.redis.set(self.prefix + "n:" + key, b"1", nx=True, px=max(int(ttl * 1000), 1)))

    async def incr(self, key: str, ttl: float) -> int:
        k = self.prefix + "c:" + key
        async with self.redis.pipeline(transaction=True) as pipe:
            # the window starts at the first failure (SET NX PX), INCR keeps the expiry; any Redis version
            pipe.set(k, 0, nx=True, px=max(int(ttl * 1000), 1))
            pipe.incr(k)
            _, value = await pipe.execute()
        return int(value)

    async def decr(self, key: str) -> int:
        return int(await self.redis.eval(_DECR_EXISTING, 1, self.prefix + "c:" + key))  # type: ignore[misc]

    async def count(self, key: str) -> int:
        raw = await self.redis.get(self.prefix + "c:" + key)
        return int(raw) if raw is not None else 0

    async def reset(self, key: str) -> None:
        await self.redis.delete(self.prefix + "c:" + key)

    async def close(self) -> None:
        if self._owned:
            await self.redis.aclose()


def make_nonce_store(redis: "Redis | None") -> NonceStore:
    """On the service's shared Redis pool when it has one, else in this process."""
    return RedisNonceStore(redis) if redis is not None else MemoryNonceStore()
