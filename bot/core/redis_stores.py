"""The short-lived stores of ``bot.core.stores`` on Redis, shared by every worker.

Selected by ``BOT_REDIS_URL``. Dedup keys are leased claims with owner tokens (Lua), and
the first answer is kept in the key so a channel's retry that lands on another worker
gets it back; the
rate limiter is GCRA in one Lua script using Redis' clock, so a Telegram limit of
30 msg/s holds across all workers together, not per process.
"""

from __future__ import annotations

import asyncio
from bot.core import jsoncodec
import time
from typing import Any

from redis.asyncio import Redis

from bot.core.settings import Settings
from bot.core.stores import Claim, DedupStore, RateLimiter, StateStore, new_token

PREFIX = "everycsr:"
# how often a worker that lost the dedup race looks for the winner's answer
WAIT_POLL_SECONDS = 0.02


def make_redis(url: str) -> Redis:
    """One client (connection pool) with short timeouts: a dead Redis is an error, not a hang."""
    return Redis.from_url(
        url, socket_connect_timeout=2, socket_timeout=5, health_check_interval=15, retry_on_timeout=False
    )


# The dedup key is a hash: s = p (processing) | d (done), o = owner token, u = lease end
# (ms, Redis' clock, shared by every worker), r = the stored answer. Each step is one
# script, so a check and its write cannot interleave with another worker's.
_NOW_MS = """
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
"""
DEDUP_CLAIM_LUA = (
    _NOW_MS
    + """
local lease = tonumber(ARGV[2])
local h = redis.call('HMGET', KEYS[1], 's', 'u', 'r')
if not h[1] then
  redis.call('HSET', KEYS[1], 's', 'p', 'o', ARGV[1], 'u', now + lease)
  redis.call('EXPIRE', KEYS[1], ARGV[3])
  return {'owner', '0'}
end
if h[1] == 'd' then return {'done', h[3] or ''} end
local u = tonumber(h[2])
if u > now then return {'busy', tostring(u - now)} end
redis.call('HSET', KEYS[1], 'o', ARGV[1], 'u', now + lease)
return {'owner', '1'}
"""
)
DEDUP_RENEW_LUA = (
    _NOW_MS
    + """
local h = redis.call('HMGET', KEYS[1], 's', 'o')
if h[1] ~= 'p' or h[2] ~= ARGV[1] then return 0 end
redis.call('HSET', KEYS[1], 'u', now + tonumber(ARGV[2]))
return 1
"""
)
DEDUP_FINISH_LUA = """
local h = redis.call('HMGET', KEYS[1], 's', 'o')
if h[1] and (h[1] ~= 'p' or h[2] ~= ARGV[1]) then return 0 end
redis.call('DEL', KEYS[1])
redis.call('HSET', KEYS[1], 's', 'd', 'r', ARGV[2])
redis.call('EXPIRE', KEYS[1], ARGV[3])
return 1
"""
DEDUP_RELEASE_LUA = """
local h = redis.call('HMGET', KEYS[1], 's', 'o')
if h[1] ~= 'p' or h[2] ~= ARGV[1] then return 0 end
redis.call('DEL', KEYS[1])
return 1
"""


class RedisDedupStore:
    """The :class:`bot.core.stores.DedupStore` on Redis: owner tokens and leases checked in Lua,
    so a retry on any worker waits for a live owner, takes over from a dead one, or gets
    the stored answer. A key lost with a Redis restart falls back on the transcript's
    unique (channel, msg_id) (see ``bot.pipeline``)."""

    def __init__(self, redis: Redis, prefix: str = PREFIX) -> None:
        self.redis = redis
        self.prefix = prefix + "dedup:"
        self._claim = redis.register_script(DEDUP_CLAIM_LUA)
        self._renew = redis.register_script(DEDUP_RENEW_LUA)
        self._finish = redis.register_script(DEDUP_FINISH_LUA)
        self._release = redis.register_script(DEDUP_RELEASE_LUA)

    async def claim(self, key: str, lease: float, ttl: int) -> Claim:
        token = new_token()
        status, extra = await self._claim(keys=[self.prefix + key], args=[token, max(1, int(lease * 1000)), int(ttl)])
        status = status.decode()
        if status == "owner":
            return Claim("owner", token=token, took_over=extra == b"1")
        if status == "done":
            return Claim("done", result=extra.decode("utf-8"))
        return Claim("busy", lease_left=int(extra) / 1000)

    async def renew(self, key: str, token: str, lease: float) -> bool:
        return bool(await self._renew(keys=[self.prefix + key], args=[token, max(1, int(lease * 1000))]))

    async def finish(self, key: str, token: str, result: str, ttl: int) -> bool:
        """Store the answer (also when the key was lost: Redis restarted meanwhile);
        refused when another owner took the message over."""
        return bool(await self._finish(keys=[self.prefix + key], args=[token, result.encode("utf-8"), int(ttl)]))

    async def release(self, key: str, token: str) -> bool:
        return bool(await self._release(keys=[self.prefix + key], args=[token]))

    async def wait_result(self, key: str, timeout: float) -> str | None:
        """Poll for the owner's answer; None when it is not there within ``timeout``
        (still processing, released, or unknown): the caller claims again."""
        k = self.prefix + key
        deadline = time.monotonic() + timeout
        while True:
            # redis-py types its commands as sync-or-async
            state, result = await self.redis.hmget(k, ["s", "r"])  # type: ignore[misc]
            if state == b"d":
                return (result or b"").decode("utf-8")
            if state is None or time.monotonic() >= deadline:
                return None
            await asyncio.sleep(min(WAIT_POLL_SECONDS, max(0.0, deadline - time.monotonic())))


class RedisStateStore:
    """Conversation state as one JSON string per key, with expiry."""

    def __init__(self, redis: Redis, prefix: str = PREFIX) -> None:
        self.redis = redis
        self.prefix = prefix + "state:"

    async def get(self, key: str) -> dict[str, Any]:
        raw = await self.redis.get(self.prefix + key)
        if raw is None:
            return {}
        value = jsoncodec.loads(raw)
        return value if isinstance(value, dict) else {}

    async def set(self, key: str, value: dict[str, Any], ttl: int) -> None:
        await self.redis.set(self.prefix + key, jsoncodec.dumps(value).encode("utf-8"), ex=ttl)

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


async def connect_redis_stores(settings: Settings) -> tuple[Redis, DedupStore, StateStore, RateLimiter]:
    """Connect (and check the connection) for the three stores; one pool shared by them.

    Typed as the kernel's store interfaces: the caller picks these or the in-memory ones."""
    redis = make_redis(settings.redis_url)
    await redis.ping()  # type: ignore[misc]  # redis-py: sync-or-async return type
    return redis, RedisDedupStore(redis), RedisStateStore(redis), RedisRateLimiter(redis)
