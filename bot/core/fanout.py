"""Live-update fan-out for server-sent events (the agent inbox, web chat).

One interface, two implementations: :class:`MemoryFanout` inside one process (embedded
mode) and :class:`RedisFanout` over Redis pub/sub so an event published by any worker
reaches subscribers on every worker. Delivery is best effort (a live view re-reads
the database on reconnect); a slow subscriber loses its oldest events, never blocks
the publisher.

Usage::

    fanout = services.fanout
    await fanout.publish("inbox", {"ticket": 7, "event": "new"})
    async with fanout.subscribe("inbox") as sub:   # subscribed once entered
        async for event in sub:
            ...
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
from collections.abc import AsyncIterator
from typing import Any, Protocol

from redis.asyncio import Redis

from bot.core.metrics import FANOUT_DROPPED

log = logging.getLogger(__name__)

QUEUE_SIZE = 256
CHANNEL_PREFIX = "everycsr:fanout:"


class Subscription:
    """An async iterator of events on one topic; use as ``async with`` to subscribe eagerly."""

    def __init__(self, hub: "_Hub", topic: str) -> None:
        self._hub = hub
        self.topic = topic
        self.queue: asyncio.Queue[dict[str, Any]] = asyncio.Queue(QUEUE_SIZE)
        self._active = False
        self.delivered = 0  # events handed to this subscription, dropped ones included
        self.dropped = 0

    async def __aenter__(self) -> "Subscription":
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        if not self._active:
            self._active = True
            await self._hub.add(self)

    async def close(self) -> None:
        if self._active:
            self._active = False
            await self._hub.remove(self)

    def deliver(self, data: dict[str, Any]) -> None:
        self.delivered += 1
        if self.queue.full():  # slow consumer: drop the oldest, keep the newest
            with contextlib.suppress(asyncio.QueueEmpty):
                self.queue.get_nowait()
                self.dropped += 1
                FANOUT_DROPPED.labels(self.topic).inc()
        self.queue.put_nowait(data)

    def __aiter__(self) -> AsyncIterator[dict[str, Any]]:
        return self

    async def __anext__(self) -> dict[str, Any]:
        await self.start()
        return await self.queue.get()

    async def get(self, timeout: float) -> dict[str, Any] | None:
        """The next event, or None after ``timeout`` seconds (for SSE keep-alives)."""
        await self.start()
        try:
            return await asyncio.wait_for(self.queue.get(), timeout)
        except asyncio.TimeoutError:
            return None


class _Hub(Protocol):
    async def add(self, sub: Subscription) -> None: ...
    async def remove(self, sub: Subscription) -> None: ...


class Fanout(Protocol):
    async def publish(self, topic: str, data: dict[str, Any]) -> None: ...
    def subscribe(self, topic: str) -> Subscription: ...
    async def close(self) -> None: ...


class MemoryFanout:
    """Fan-out within this process."""

    def __init__(self) -> None:
        self._subs: dict[str, set[Subscription]] = {}

    async def add(self, sub: Subscription) -> None:
        self._subs.setdefault(sub.topic, set()).add(sub)

    async def remove(self, sub: Subscription) -> None:
        subs = self._subs.get(sub.topic)
        if subs is not None:
            subs.discard(sub)
            if not subs:
                del self._subs[sub.topic]

    def _dispatch(self, topic: str, data: dict[str, Any]) -> None:
        for sub in list(self._subs.get(topic, ())):
            sub.deliver(data)

    async def publish(self, topic: str, data: dict[str, Any]) -> None:
        # round-trip through JSON so both implementations hand out the same plain data
        self._dispatch(topic, json.loads(json.dumps(data, ensure_ascii=False, default=str)))

    def subscribe(self, topic: str) -> Subscription:
        return Subscription(self, topic)

    async def close(self) -> None:
        self._subs.clear()


class RedisFanout(MemoryFanout):
    """Fan-out across workers: one pub/sub connection per process, local dispatch to queues.

    The listener reconnects after a Redis outage and re-subscribes every topic it had.
    A new topic's subscription is confirmed by Redis before ``add`` returns, so an event
    published once ``subscribe()`` has been entered is never missed.
    """

    CONFIRM_SECONDS = 5.0

    def __init__(self, redis: Redis, prefix: str = CHANNEL_PREFIX) -> None:
        super().__init__()
        self.redis = redis
        self.prefix = prefix
        self._pubsub = redis.pubsub()
        self._listener: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self._confirming: dict[str, asyncio.Future[None]] = {}  # channel -> Redis said "subscribe"

    async def add(self, sub: Subscription) -> None:
        async with self._lock:
            first = sub.topic not in self._subs
            await super().add(sub)
            confirmed: asyncio.Future[None] | None = None
            if first:
                channel = self.prefix + sub.topic
                confirmed = self._confirming[channel] = asyncio.get_running_loop().create_future()
                await self._pubsub.subscribe(channel)
            if self._listener is None or self._listener.done():
                self._listener = asyncio.create_task(self._listen(), name="fanout-listener")
            if confirmed is not None:
                try:
                    await asyncio.wait_for(asyncio.shield(confirmed), self.CONFIRM_SECONDS)
                except asyncio.TimeoutError:  # Redis is slow or away: the listener keeps trying
                    log.warning("fan-out: Redis has not confirmed the subscription to %s yet", sub.topic)
                finally:
                    self._confirming.pop(self.prefix + sub.topic, None)

    async def remove(self, sub: Subscription) -> None:
        async with self._lock:
            await super().remove(sub)
            if sub.topic not in self._subs:
                with contextlib.suppress(Exception):
                    await self._pubsub.unsubscribe(self.prefix + sub.topic)

    async def publish(self, topic: str, data: dict[str, Any]) -> None:
        await self.redis.publish(self.prefix + topic, json.dumps(data, ensure_ascii=False, default=str))

    async def _listen(self) -> None:
        backoff = 0.1
        while self._subs:
            try:
                msg = await self._pubsub.get_message(timeout=1.0)
                backoff = 0.1
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # Redis went away: reconnect, re-subscribe
                log.warning("fan-out listener lost Redis (%s); reconnecting", exc)
                await asyncio.sleep(backoff)
                backoff = min(backoff * 2, 5.0)
                with contextlib.suppress(Exception):
                    await self._pubsub.aclose()
                    self._pubsub = self.redis.pubsub()
                    if self._subs:
                        await self._pubsub.subscribe(*[self.prefix + t for t in self._subs])
                continue
            if not msg:
                continue
            if msg.get("type") == "subscribe":
                waiter = self._confirming.get(msg["channel"].decode("utf-8"))
                if waiter is not None and not waiter.done():
                    waiter.set_result(None)
                continue
            if msg.get("type") != "message":
                continue
            topic = msg["channel"].decode("utf-8").removeprefix(self.prefix)
            try:
                data = json.loads(msg["data"])
            except ValueError:
                continue
            self._dispatch(topic, data)

    async def close(self) -> None:
        if self._listener:
            self._listener.cancel()
            await asyncio.gather(self._listener, return_exceptions=True)
        self._subs.clear()
        with contextlib.suppress(Exception):
            await self._pubsub.aclose()


def make_fanout(redis: Redis | None) -> Fanout:
    """Redis fan-out when a client is given, else in-process."""
    return RedisFanout(redis) if redis is not None else MemoryFanout()
