"""The buffer that joins multi-part (concatenated) SMPP texts, shared by every worker.

Parts of one text may reach different processes (a bind taken over mid-message), so in
production they are kept in Redis: one hash per (sender, reference, total) holding the
parts and the data coding, added to and completed in one Lua script (the process that
adds the last part gets the whole text, exactly once), expiring like the in-process
:class:`sms_gateway.encoding.Reassembler` used without Redis.
"""

from __future__ import annotations

from typing import Protocol

from redis.asyncio import Redis

from bot.core.redis_stores import PREFIX
from sms_gateway.encoding import Concat, Reassembler, decode_body

# ARGV: part number, body, data coding, total, ttl. Returns the parts in order once all are
# in (and deletes the hash), else nothing.
ADD_LUA = """
redis.call('HSET', KEYS[1], 'p' .. ARGV[1], ARGV[2])
redis.call('HSETNX', KEYS[1], 'dc', ARGV[3])
redis.call('EXPIRE', KEYS[1], ARGV[5])
local total = tonumber(ARGV[4])
if redis.call('HLEN', KEYS[1]) - 1 < total then return false end
local out = {redis.call('HGET', KEYS[1], 'dc')}
for i = 1, total do out[#out + 1] = redis.call('HGET', KEYS[1], 'p' .. i) end
redis.call('DEL', KEYS[1])
return out
"""


class JoinBuffer(Protocol):
    async def add(self, sender: str, concat: Concat, body: bytes, data_coding: int) -> str | None: ...


class MemoryJoinBuffer:
    """One process: the in-process reassembler."""

    def __init__(self, reassembler: Reassembler | None = None) -> None:
        self.reassembler = reassembler or Reassembler()

    async def add(self, sender: str, concat: Concat, body: bytes, data_coding: int) -> str | None:
        return self.reassembler.add(sender, concat, body, data_coding)


class RedisJoinBuffer:
    def __init__(self, redis: Redis, ttl_seconds: int = 600) -> None:
        self.redis = redis
        self.ttl = ttl_seconds
        self._add = redis.register_script(ADD_LUA)

    async def add(self, sender: str, concat: Concat, body: bytes, data_coding: int) -> str | None:
        """Add one part; the whole text once the last part is in (to one caller only)."""
        if not 1 <= concat.seq <= concat.total:
            return None  # a malformed header: no such part
        key = f"{PREFIX}sms:join:{sender}:{concat.ref}:{concat.total}"
        done = await self._add(keys=[key], args=[concat.seq, body, data_coding, concat.total, self.ttl])
        if not done:
            return None
        dc, *parts = done
        return decode_body(b"".join(parts), int(dc))
