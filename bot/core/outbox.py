"""The durable outbox: every message that does not go back inline is stored, then sent.

Workers claim a due row with a conditional update (safe with several processes),
respect each channel's global and per-chat rate, retry with exponential backoff and
dead-letter what keeps failing. Unsolicited messages to opted-out members are
suppressed here, so every sender honours opt-out.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from bot.core import metrics
from bot.core.channel_registry import ChannelRegistry, ChannelSender, SendError
from bot.core.messages import Outgoing, Reply
from bot.core.models import ChannelAccount, Member, OutboxMessage, TranscriptEntry
from bot.core.settings import Settings
from bot.core.state import remember_choices_of
from bot.core.stores import RateLimiter, StateStore, member_state_key

log = logging.getLogger(__name__)

DUE_STATUSES = ("queued", "failed")
INLINE = "inline"  # provider_ref of a row answered on the request itself (passive reply)


def utcnow() -> datetime:
    return datetime.now(timezone.utc)


# --- the row lease: one rule for the in-process worker, the queue workers and inline senders
async def claim_row(msg_id: int, lease_seconds: float, *, due_only: bool = True) -> bool:
    """Take a queued/failed row for sending (``sending``, leased until ``next_attempt_at``).

    A conditional update, so of several processes exactly one wins. ``due_only=False``:
    the channel that stored the row to answer inline claims it before it is due (the
    outbox gives it that grace, then sends it itself)."""
    now = utcnow()
    q = OutboxMessage.filter(id=msg_id, status__in=DUE_STATUSES)
    if due_only:
        q = q.filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    return bool(await q.update(status="sending", next_attempt_at=now + timedelta(seconds=lease_seconds)))


async def mark_sent(msg_id: int, *, attempts: int, provider_ref: str = "", segments: int | None = None) -> None:
    """The provider accepted the message: record it before anything else acknowledges it."""
    await OutboxMessage.filter(id=msg_id).update(
        status="sent",
        attempts=attempts,
        sent_at=utcnow(),
        provider_ref=provider_ref[:128],
        segments=segments,
        last_error="",
    )


async def reclaim_expired(limit: int = 1000) -> list[int]:
    """Rows left in ``sending`` past their lease (the process sending them died) go back
    to the queue, due now; returns their ids. Run at start-up and periodically, in the
    embedded mode and by every queue worker alike."""
    now = utcnow()
    stale = (
        await OutboxMessage.filter(status="sending", next_attempt_at__lt=now).limit(limit).values_list("id", "channel")
    )
    taken: list[int] = []
    for msg_id, channel in stale:
        if await OutboxMessage.filter(id=msg_id, status="sending", next_attempt_at__lt=now).update(
            status="failed", next_attempt_at=now, last_error="lease expired: the process sending it was lost"
        ):
            metrics.OUTBOX_RECLAIMED.labels(channel).inc()
            log.warning("outbox %s (%s): lease expired, sending again", msg_id, channel)
            taken.append(msg_id)
    return taken


def chat_rate(sender: ChannelSender, address: str) -> float | None:
    """The sender's rate for one address: ``rate_for_address`` when the channel has
    different limits per kind of chat (Telegram groups), else ``rate_per_chat``."""
    rate_for = getattr(sender, "rate_for_address", None)
    return rate_for(address) if rate_for is not None else sender.rate_per_chat


async def pace(limiter: RateLimiter, sender: ChannelSender, address: str) -> None:
    """Wait for the chat's slot, then for the channel's global slot.

    The global slot is reserved last, when the message is otherwise ready, so a message
    held back by its chat never spends a global slot it does not use. Channels that send
    inline (outside the outbox) call this too, so both share one budget.
    """
    per_chat = chat_rate(sender, address)
    if per_chat:
        await asyncio.sleep(await limiter.reserve(f"rate:{sender.name}:{address}", per_chat, 1))
    if sender.rate_global:
        loop = asyncio.get_running_loop()
        slot = 1.0 / sender.rate_global
        for _ in range(4):
            delay = await limiter.reserve(f"rate:{sender.name}", sender.rate_global, 1)
            due = loop.time() + delay
            await asyncio.sleep(delay)
            if loop.time() - due <= slot:
                break
            # woke up more than a slot late (a busy process): going now would bunch up
            # with the next slots' messages into a burst the provider may punish


class Outbox:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.wakeup = asyncio.Event()
        # called with the id of each newly stored row (production: hand it to the task queue)
        self.on_stored: list[Callable[[int], Awaitable[None]]] = []

    async def enqueue(
        self, out: Outgoing, *, transcribe: bool = True, not_before: datetime | None = None
    ) -> OutboxMessage:
        """Store a message for sending; the same ``idempotency_key`` is stored once.
        ``not_before``: first attempt no earlier (a provider already said "retry after")."""
        if out.idempotency_key:
            existing = await OutboxMessage.get_or_none(idempotency_key=out.idempotency_key)
            if existing:
                return existing
        try:
            row = await OutboxMessage.create(
                channel=out.channel,
                address=out.address,
                member_id=out.member_id,
                payload=out.reply.to_dict(),
                purpose=out.purpose,
                idempotency_key=out.idempotency_key,
                next_attempt_at=max(not_before, utcnow()) if not_before else utcnow(),
            )
        except IntegrityError:
            return await OutboxMessage.get(idempotency_key=out.idempotency_key)
        if transcribe and out.member_id and out.purpose != "reply":
            await TranscriptEntry.create(
                member_id=out.member_id,
                channel=out.channel,
                direction="out",
                text=out.reply.text,
                kind=out.purpose,
                item_id=out.reply.item_id,
                # as the pipeline records its replies: a chat page shows the choices again
                payload={
                    "choices": [c.action for c in out.reply.choices],
                    "labels": [c.label for c in out.reply.choices],
                }
                if out.reply.choices
                else None,
            )
        self.wakeup.set()
        for hook in self.on_stored:
            await hook(row.id)
        return row

    async def answered_inline(self, out: Outgoing) -> bool:
        """Record that ``out`` is being answered inline (a passive WeChat reply), unless the
        outbox already has its key: True when the inline answer may go out. One slot per
        key, so one position of one answer goes out inline or through the outbox, never
        both; repeating the inline answer to the same channel's retry is allowed."""
        assert out.idempotency_key, "an inline answer is recorded by its key"
        existing = await OutboxMessage.get_or_none(idempotency_key=out.idempotency_key)
        if existing is None:
            try:
                await OutboxMessage.create(
                    channel=out.channel,
                    address=out.address,
                    member_id=out.member_id,
                    payload=out.reply.to_dict(),
                    purpose=out.purpose,
                    idempotency_key=out.idempotency_key,
                    status="sent",
                    attempts=1,
                    sent_at=utcnow(),
                    provider_ref=INLINE,
                )
                return True
            except IntegrityError:
                existing = await OutboxMessage.get(idempotency_key=out.idempotency_key)
        return existing.provider_ref == INLINE

    async def to_member(
        self,
        member_id: int,
        reply: Reply,
        *,
        purpose: str,
        idempotency_key: str | None = None,
        channel: str | None = None,
    ) -> OutboxMessage | None:
        """Send on the member's most recently used active channel (or the one named)."""
        q = ChannelAccount.filter(member_id=member_id, active=True)
        if channel:
            q = q.filter(channel=channel)
        # an account that never wrote (NULL) comes last: PostgreSQL sorts NULLs first in DESC
        account = (
            await q.filter(last_inbound_at__isnull=False).order_by("-last_inbound_at").first()
            or await q.order_by("id").first()
        )
        if account is None:
            return None
        return await self.enqueue(
            Outgoing(
                channel=account.channel,
                address=account.chat_id or account.external_id,
                reply=reply,
                member_id=member_id,
                purpose=purpose,
                idempotency_key=idempotency_key,
            )
        )


class OutboxWorker:
    """In-process sender loop (embedded mode); production runs the same ``send_one``
    from task-queue workers."""

    def __init__(
        self,
        settings: Settings,
        outbox: Outbox,
        channels: ChannelRegistry,
        limiter: RateLimiter,
        concurrency: int = 32,
        state: StateStore | None = None,
    ) -> None:
        self.settings = settings
        self.state = state
        self.outbox = outbox
        self.channels = channels
        self.limiter = limiter
        self._sem = asyncio.Semaphore(concurrency)
        self._inflight: set[asyncio.Task[None]] = set()
        self._stopping = False
        # how often expired leases are looked for: often enough that a lost row waits at
        # most about a quarter lease more than its lease
        self.reclaim_every = max(1.0, min(30.0, settings.outbox_lease_seconds / 4))

    async def run(self) -> None:
        loop = asyncio.get_running_loop()
        next_reclaim = 0.0  # at start-up first: rows a killed process left in `sending`
        while not self._stopping:
            try:
                if loop.time() >= next_reclaim:
                    await reclaim_expired()
                    next_reclaim = loop.time() + self.reclaim_every
                count = await self.drain_once()
            except asyncio.CancelledError:
                raise
            except Exception:  # database hiccup: keep the loop alive
                log.exception("outbox poll failed")
                count = 0
            if count == 0:
                self.outbox.wakeup.clear()
                try:
                    await asyncio.wait_for(self.outbox.wakeup.wait(), self.settings.outbox_poll_seconds)
                except asyncio.TimeoutError:
                    pass

    async def drain_once(self, limit: int = 200) -> int:
        due = (
            await OutboxMessage.filter(status__in=DUE_STATUSES, next_attempt_at__lte=utcnow())
            .order_by("id")
            .limit(limit)
            .values_list("id", "status")
        )
        started = 0
        for msg_id, _status in due:
            if not await claim_row(msg_id, self.settings.outbox_lease_seconds):
                continue  # another worker has it
            await self._sem.acquire()
            task = asyncio.create_task(self._send_guarded(msg_id))
            self._inflight.add(task)
            task.add_done_callback(self._inflight.discard)
            started += 1
        return started

    async def wait_idle(self) -> None:
        while self._inflight:
            await asyncio.gather(*list(self._inflight), return_exceptions=True)

    async def _send_guarded(self, msg_id: int) -> None:
        try:
            await self.send_one(msg_id)
        except Exception:
            log.exception("outbox send %s crashed", msg_id)
            await OutboxMessage.filter(id=msg_id, status="sending").update(
                status="failed", next_attempt_at=utcnow() + timedelta(seconds=30), last_error="internal error"
            )
        finally:
            self._sem.release()

    async def send_one(self, msg_id: int) -> str:
        """Send one claimed (status ``sending``) message; returns its new status."""
        msg = await OutboxMessage.get(id=msg_id)
        member = await Member.get_or_none(id=msg.member_id) if msg.member_id else None
        if member and member.opted_out and msg.purpose not in ("reply", "agent", "survey", "system"):
            return await self._finish(msg, "suppressed", "member opted out")
        sender = self.channels.get(msg.channel)
        if sender is None:
            return await self._finish(msg, "held", f"channel {msg.channel} is not configured")
        await pace(self.limiter, sender, msg.address)
        locale = member.locale if member else self.settings.default_locale
        attempts = msg.attempts + 1
        reply = Reply.from_dict(msg.payload)
        try:
            result = await sender.send(msg, reply, locale)
        except SendError as err:
            metrics.OUTBOX_FAILED.labels(msg.channel, "hold" if err.hold else "error").inc()
            if err.unreachable and msg.member_id:
                await ChannelAccount.filter(member_id=msg.member_id, channel=msg.channel).update(
                    active=False, inactive_reason=err.reason[:64]
                )
            if err.permanent or err.unreachable:
                return await self._finish(msg, "dead", err.reason, attempts=attempts)
            if err.hold:
                return await self._finish(msg, "held", err.reason, attempts=attempts)
            if err.ambiguous:
                return await self._finish(
                    msg, "dead", f"{err.reason} (may have been delivered; not repeated)", attempts=attempts
                )
            return await self._retry(msg, attempts, err.reason, err.retry_after)
        except Exception as exc:  # network errors and the like
            metrics.OUTBOX_FAILED.labels(msg.channel, "exception").inc()
            return await self._retry(msg, attempts, f"{type(exc).__name__}: {exc}"[:500], None)
        metrics.OUTBOX_SENT.labels(msg.channel).inc()
        await mark_sent(msg.id, attempts=attempts, provider_ref=result.provider_ref, segments=result.segments)
        if reply.choices and msg.member_id and self.state is not None:
            await self._remember_choices(msg.member_id, reply)
        return "sent"

    async def _remember_choices(self, member_id: int, reply: Reply) -> None:
        """A later "1" answers the choices of a message sent now (SMS, WeChat text)."""
        if self.state is not None:
            key = member_state_key(member_id)
            await remember_choices_of(self.state, key, reply.choices, self.settings.state_ttl_seconds)

    async def _retry(self, msg: OutboxMessage, attempts: int, reason: str, retry_after: float | None) -> str:
        if attempts >= self.settings.outbox_max_attempts:
            return await self._finish(msg, "dead", reason, attempts=attempts)
        delay = (
            retry_after if retry_after is not None else self.settings.outbox_backoff_base_seconds * 2 ** (attempts - 1)
        )
        await OutboxMessage.filter(id=msg.id).update(
            status="failed",
            attempts=attempts,
            last_error=reason[:1000],
            next_attempt_at=utcnow() + timedelta(seconds=delay),
        )
        self.outbox.wakeup.set()
        return "failed"

    async def _finish(self, msg: OutboxMessage, status: str, reason: str, *, attempts: int | None = None) -> str:
        await OutboxMessage.filter(id=msg.id).update(
            status=status, last_error=reason[:1000], attempts=attempts if attempts is not None else msg.attempts
        )
        return status

    async def stop(self) -> None:
        self._stopping = True
        self.outbox.wakeup.set()
        await self.wait_idle()
