"""The short-lived stores of ``bot.stores`` on Redis, shared by every worker.

Selected by ``BOT_REDIS_URL``. Dedup claims are ``SET NX EX``; the first answer is kept
next to the claim so a channel's retry that lands on another worker gets it back; the
rate limiter is GCRA in one Lua script using Redis' clock, so a Telegram limit of
30 msg/s holds across all workers together, not per process.
"""
from __future__ import annotations

import asyncio
import json
import time
from typing import Any

from redis.asyncio import Redis

from bot.settings import Settings

PREFIX = "everycsr:"
# how often a worker that lost the dedup race looks for the winner's answer
WAIT_POLL_SECONDS = 0.02


def make_redis(url: str) -> Redis:
    """One client (connection pool) with short timeouts: a dead Redis is an error, not a hang."""
    return Redis.from_url(
        url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=15, retry_on_timeout=False
    )


class RedisDedupStore:
    """``claim`` = SET NX EX; the stored result lets a retry on any worker get the first answer."""

    def __init__(self, redis: Redis, prefix: str = PREFIX) -> None:
        self.redis = redis
        self.prefix = prefix + "dedup:"

    async def claim(self, key: str, ttl: int) -> bool:
        k = self.prefix + key
        claimed = await self.redis.set(k, b"1", nx=True, ex=ttl)
        if claimed:
            await self.redis.delete(k + ":r")
        return bool(claimed)

    async def store_result(self, key: str, result: str, ttl: int) -> None:
        await self.redis.set(self.prefix + key + ":r", result.encode("utf-8"), ex=ttl)

    async def wait_result(self, key: str, timeout: float) -> str | None:
        """Poll for the winner's answer; None when it released its claim or timed out."""
        k = self.prefix + key
        deadline = time.monotonic() + timeout
        while True:
            result, claimed = await self.redis.mget(k + ":r", k)
            if result is not None:
                return result.decode("utf-8")
            if claimed is None or time.monotonic() >= deadline:
                return None
            await asyncio.sleep(WAIT_POLL_SECONDS)

    async def release(self, key: str) -> None:
        k = self.prefix + key
        await self.redis.delete(k, k + ":r")


class RedisStateStore:
    """Conversation state as one JSON string per key, with expiry."""

    def __init__(self, redis: Redis, prefix: str = PREFIX) -> None:
        self.redis = redis
        self.prefix = prefix + "state:"

    async def get(self, key: str) -> dict[str, Any]:
        raw = await self.redis.get(self.prefix + key)
        if raw is None:
            return {}
        value = json.loads(raw)
        return value if isinstance(value, dict) else {}

    async def set(self, key: str, value: dict[str, Any], ttl: int) -> None:
        await self.redis.set(self.prefix + key, json.dumps(value, ensure_ascii=False).encode("utf-8"), ex=ttl)

    async def delete(self, key: str) -> None:
        await self.redis.delete(self.prefix + key)


# GCRA: the theoretical arrival time (TAT) per key, advanced by one interval per
# reservation; the caller waits until TAT - (burst-1)*interval. Redis' TIME is the one
# clock every worker shares. Returns the delay as a string (Lua numbers become integers).
GCRA_LUA = """
local interval = tonumber(ARGV[1])
local burst = tonumber(ARGV[2])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local tat = tonumber(redis.call('GET', KEYS[1]) or '0')
if tat < now then tat = now end
local allow_at = tat - (burst - 1) * interval
local new_tat = tat + interval
redis.call('SET', KEYS[1], string.format('%.6f', new_tat), 'PX', math.ceil((new_tat - now) * 1000) + 1000)
local delay = allow_at - now
if delay < 0 then delay = 0 end
return string.format('%.6f', delay)
"""


class RedisRateLimiter:
    """Token bucket (GCRA) shared by all workers: returns the delay until the reserved slot."""

    def __init__(self, redis: Redis, prefix: str = PREFIX) -> None:
        self.redis = redis
        self.prefix = prefix + "rate:"
        self._script = redis.register_script(GCRA_LUA)

    async def reserve(self, key: str, rate: float, burst: float = 1.0) -> float:
        if rate <= 0:
            raise ValueError("rate must be positive")
        delay = await self._script(keys=[self.prefix + key], args=[repr(1.0 / rate), repr(float(burst))])
        return float(delay)


async def connect_redis_stores(settings: Settings) -> tuple[RedisDedupStore, RedisStateStore, RedisRateLimiter]:
    """Connect (and check the connection) for the three stores; one pool shared by them."""
    redis = make_redis(settings.redis_url)
    await redis.ping()
    return RedisDedupStore(redis), RedisStateStore(redis), RedisRateLimiter(redis)


async def close_redis_stores(*stores: object) -> None:
    """Close the shared pool of stores made by :func:`connect_redis_stores`."""
    seen: set[int] = set()
    for store in stores:
        redis = getattr(store, "redis", None)
        if redis is not None and id(redis) not in seen:
            seen.add(id(redis))
            await redis.aclose()
