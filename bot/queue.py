"""The durable outbox in production mode: taskiq tasks on a Redis stream.

Order of events for one outgoing message:

1. ``Outbox.enqueue`` stores the ``OutboxMessage`` row (status ``queued``) — the
   message is durable from here on, whatever happens to Redis or a worker;
2. the row's id is handed to the queue as a taskiq task (``everycsr.outbox.send``);
   a short-lived Redis marker keeps the same row from being handed out twice at once;
3. a queue worker receives the task, claims the row with a conditional update
   (``queued``/``failed`` and due -> ``sending``, lease until ``next_attempt_at``, a
   fresh ``claim_token``), and runs :meth:`bot.core.outbox.OutboxWorker.send_one` — the same send, rate limiting,
   retry/backoff and dead-letter rules as the embedded in-process worker;
4. a sweeper in every queue worker hands out due rows nobody handed out (Redis was
   down at enqueue time, retries whose backoff expired) and takes back rows left in
   ``sending`` past their lease (the worker was killed): nothing is lost.

A second task for the same row finds it already claimed and does nothing, so
duplicates in the queue never become duplicate sends. A row taken back after a killed
worker is sent again; channels that accept an idempotency key get the row id (see
``docs/operations.md``), so a provider that dedups sees no duplicate.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncGenerator, AsyncIterator, Callable
from typing import Any, Literal, cast

from aiohttp import web
from redis.asyncio import Redis
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError, ResponseError
from redis.exceptions import TimeoutError as RedisTimeoutError
from taskiq import AckableMessage
from taskiq.acks import AcknowledgeType
from taskiq.api.receiver import run_receiver_task
from taskiq_redis import RedisStreamBroker
from tortoise.expressions import Q

from bot.core.app_keys import PROCESS_ROLE, SERVICES
from bot.core.models import OutboxMessage
from bot.core.clock import utcnow
from bot.core.outbox import DUE_STATUSES, OutboxWorker, claim_row, reclaim_expired
from bot.core.redis_stores import PREFIX, make_redis
from bot.core.settings import Settings

log = logging.getLogger(__name__)

QueueRole = Literal["both", "web", "worker"]
# "web": only hand rows to the queue (several aiohttp workers); "worker": only consume
# (the queue worker process); "both": a single process doing both (`python -m bot run`)
QUEUE_ROLE = PROCESS_ROLE
OUTBOX_QUEUE: "web.AppKey[OutboxQueue]" = web.AppKey("outbox_queue")
STREAM = PREFIX + "outbox"
TASK_NAME = "everycsr.outbox.send"


class OutboxStreamBroker(RedisStreamBroker):
    """taskiq's Redis stream broker, made to survive a Redis restart.

    After a restart without persistence the stream and its consumer group are gone
    (``NOGROUP``); the stock broker would fail forever. Here the listener waits for
    Redis, declares the group again and carries on.
    """

    async def listen(self) -> AsyncGenerator[AckableMessage, None]:
        backoff = 0.1
        while True:
            try:
                async for message in super().listen():
                    backoff = 0.1
                    yield message
            except asyncio.CancelledError:
                raise
            except (RedisConnectionError, RedisTimeoutError, ConnectionError, OSError) as exc:
                log.warning("outbox queue: Redis unavailable (%s); retrying in %.1fs", exc, backoff)
            except ResponseError as exc:
                if "NOGROUP" not in str(exc):
                    raise
                log.warning("outbox queue: consumer group missing (Redis restarted?); declaring it again")
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, 5.0)
            with contextlib.suppress(RedisError, OSError):
                await self._declare_consumer_group()


class OutboxQueue:
    """Hands stored rows to the task queue (every process) and sends them (queue workers)."""

    def __init__(self, settings: Settings, worker: OutboxWorker, redis: Redis | None = None) -> None:
        self.settings = settings
        self.worker = worker
        self.redis = redis or make_redis(settings.redis_url)
        lease_ms = int(settings.outbox_lease_seconds * 1000)
        self.broker = OutboxStreamBroker(
            settings.redis_url,
            queue_name=STREAM,
            consumer_group_name="everycsr-outbox",
            consumer_id="0",  # a group declared late still sees every task already queued
            maxlen=100_000,
            idle_timeout=lease_ms,  # unacked tasks of a dead worker are claimed after the lease
            unacknowledged_lock_timeout=5.0,
            xread_block=1000,
            socket_connect_timeout=2,
            socket_timeout=5,
        )

        async def send_outbox_message(msg_id: int) -> str:
            return await self.handle(msg_id)

        self.task = self.broker.register_task(send_outbox_message, task_name=TASK_NAME)
        self._tasks: list[asyncio.Task[None]] = []
        self.stats = {"sent": 0, "skipped": 0, "reclaimed": 0, "kick_errors": 0, "stale": 0}

    def _marker(self, msg_id: int) -> str:
        return f"{PREFIX}outbox:handed:{msg_id}"

    # --- handing out ----------------------------------------------------------------------
    async def dispatch(self, msg_id: int) -> bool:
        """Hand one row to the queue unless it was handed out within the grace.

        Never raises: the row is already stored, and a sweeper hands it out later if
        Redis is unreachable now.
        """
        try:
            fresh = await self.redis.set(
                self._marker(msg_id), b"1", nx=True, px=int(self.settings.outbox_kick_grace_seconds * 1000)
            )
            if fresh:
                await self.task.kiq(msg_id)
            return bool(fresh)
        except Exception as exc:
            self.stats["kick_errors"] += 1
            log.warning("outbox %s stored, not yet queued (%s); the sweeper will hand it out", msg_id, exc)
            with contextlib.suppress(Exception):
                await self.redis.delete(self._marker(msg_id))
            return False

    async def _unmark(self, msg_id: int) -> None:
        with contextlib.suppress(Exception):
            await self.redis.delete(self._marker(msg_id))

    # --- the task ---------------------------------------------------------------------------
    async def handle(self, msg_id: int) -> str:
        """The task body: claim the row (conditional update with a lease), then send it."""
        token = await claim_row(msg_id, self.settings.outbox_lease_seconds)
        if token is None:
            self.stats["skipped"] += 1
            # not due yet / already taken / not yet committed: let the sweeper decide later
            await self._unmark(msg_id)
            return "skipped"
        try:
            # the lease is renewed while the send is in flight, and the outcome is recorded
            # only while the claim is still this token's (a stale worker changes nothing)
            status = await self.worker.send_one(msg_id, token)
        except Exception:
            log.exception("outbox send %s crashed", msg_id)
            await self.worker.crashed(msg_id, token)
            status = "failed"
        if status == "sent":
            self.stats["sent"] += 1
        elif status == "stale":
            self.stats["stale"] += 1
        await self._unmark(msg_id)
        return status

    # --- the sweeper ------------------------------------------------------------------------
    async def sweep(self, limit: int = 1000) -> int:
        """Take back rows whose lease expired, hand out due rows nobody handed out."""
        for msg_id in await reclaim_expired(limit):
            self.stats["reclaimed"] += 1
            await self._unmark(msg_id)
        now = utcnow()
        due = cast(  # tortoise types flat=True as tuples
            list[int],
            await OutboxMessage.filter(
                Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now), status__in=DUE_STATUSES
            )
            .order_by("id")
            .limit(limit)
            .values_list("id", flat=True),
        )
        handed = 0
        for msg_id in due:
            handed += await self.dispatch(msg_id)
        return handed

    async def _sweep_forever(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database or Redis outage: keep sweeping
                log.warning("outbox sweep failed: %s", exc)
            await asyncio.sleep(self.settings.outbox_poll_seconds)

    # --- lifecycle --------------------------------------------------------------------------
    async def start(self, role: str) -> None:
        try:
            await self.broker.startup()
        except (RedisError, OSError) as exc:  # the listener declares the group once Redis is back
            log.warning("outbox queue: Redis unavailable at startup (%s)", exc)
        if role in ("both", "worker"):
            self._tasks.append(
                asyncio.create_task(
                    run_receiver_task(
                        self.broker,
                        max_async_tasks=self.settings.outbox_queue_concurrency,
                        ack_time=AcknowledgeType.WHEN_EXECUTED,
                        propagate_exceptions=False,
                    ),
                    name="outbox-receiver",
                )
            )
            self._tasks.append(asyncio.create_task(self._sweep_forever(), name="outbox-sweeper"))

    async def stop(self) -> None:
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        self._tasks.clear()
        with contextlib.suppress(Exception):
            await self.broker.shutdown()
        with contextlib.suppress(Exception):
            await self.redis.aclose()


def queue_ctx(settings: Settings) -> Callable[[web.Application], AsyncIterator[None]]:
    """Cleanup context replacing the in-process outbox worker when Redis is configured."""

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        services = app[SERVICES]
        worker = OutboxWorker(settings, services.outbox, services.channels, services.limiter, state=services.state)
        queue = OutboxQueue(settings, worker)
        role = app.get(QUEUE_ROLE, "both") if settings.outbox_enabled else "web"
        await queue.start(role)
        services.outbox.on_stored.append(queue.dispatch)
        app[OUTBOX_QUEUE] = queue
        try:
            yield
        finally:
            with contextlib.suppress(ValueError):
                services.outbox.on_stored.remove(queue.dispatch)
            await queue.stop()

    return ctx


__all__: list[Any] = ["OutboxQueue", "queue_ctx", "QUEUE_ROLE", "OUTBOX_QUEUE"]
