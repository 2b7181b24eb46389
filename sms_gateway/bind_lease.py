"""One SMPP bind per account across all workers: a Redis lease with a fencing token.

Every process that sends (the queue workers, or the single process) runs
:func:`hold_bind`: it waits for the lease ``everycsr:smpp:bind:<system_id>`` (SET NX PX
with a token carrying an increasing fence number), binds while it holds it, renews it
every third of the lease, and unbinds the moment a renewal fails (it stalled, or Redis
lost the key and another took it). When the holder dies its lease lapses within
``smpp_bind_lease_seconds`` and a waiting worker binds instead. The other processes keep
no session, so an SMSC that allows a single bind per account is never refused, and MO
texts all arrive on one session.
"""

from __future__ import annotations

import asyncio
import logging
import os
from collections.abc import Awaitable, Callable

from redis.asyncio import Redis

from bot.core.redis_stores import PREFIX

log = logging.getLogger(__name__)

RENEW_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
redis.call('PEXPIRE', KEYS[1], ARGV[2])
return 1
"""
RELEASE_LUA = """
if redis.call('GET', KEYS[1]) ~= ARGV[1] then return 0 end
return redis.call('DEL', KEYS[1])
"""


class BindLease:
    """The lease on one SMPP account; ``token`` is ``<fence>:<pid>`` while held."""

    def __init__(self, redis: Redis, system_id: str, lease_seconds: float) -> None:
        self.redis = redis
        self.key = f"{PREFIX}smpp:bind:{system_id}"
        self.lease_ms = max(100, int(lease_seconds * 1000))
        self.token: str | None = None
        self.fence = 0
        self._renew = redis.register_script(RENEW_LUA)
        self._release = redis.register_script(RELEASE_LUA)

    async def try_acquire(self) -> bool:
        fence = int(await self.redis.incr(self.key + ":fence"))
        token = f"{fence}:{os.getpid()}"
        if await self.redis.set(self.key, token, nx=True, px=self.lease_ms):
            self.token, self.fence = token, fence
            return True
        return False

    async def renew(self) -> bool:
        if self.token is None:
            return False
        return bool(await self._renew(keys=[self.key], args=[self.token, self.lease_ms]))

    async def release(self) -> None:
        if self.token is not None:
            await self._release(keys=[self.key], args=[self.token])
            self.token = None

    async def holder(self) -> str | None:
        raw = await self.redis.get(self.key)
        return raw.decode() if raw is not None else None


async def hold_bind(
    lease: BindLease,
    bind: Callable[[], Awaitable[None]],
    unbind: Callable[[], Awaitable[None]],
) -> None:
    """Bind while holding the lease, until cancelled (then unbind and release)."""
    beat = lease.lease_ms / 3000
    try:
        while True:
            try:
                held = await lease.try_acquire()
            except Exception as exc:  # Redis down: nobody can prove the lease; do not bind
                log.warning("SMPP bind lease unavailable: %s", exc)
                held = False
            if not held:
                await asyncio.sleep(beat)
                continue
            log.info("SMPP bind lease %s taken (fence %s)", lease.key, lease.fence)
            await bind()
            loop = asyncio.get_running_loop()
            renewed = loop.time()
            try:
                while True:
                    await asyncio.sleep(beat)
                    try:
                        if not await lease.renew():
                            log.warning("SMPP bind lease lost (fence %s): unbinding", lease.fence)
                            break
                        renewed = loop.time()
                    except Exception as exc:  # a Redis hiccup: hold on while the lease surely lasts
                        if loop.time() - renewed >= 0.8 * lease.lease_ms / 1000:
                            log.warning("SMPP bind lease could not be renewed (%s): unbinding", exc)
                            break
            finally:
                await unbind()
                lease.token = None
    finally:
        try:
            await lease.release()
        except Exception:
            pass
