"""The durable outbox: every message that does not go back inline is stored, then sent.

Workers claim a due row with a conditional update (safe with several processes),
respect each channel's global and per-chat rate, retry with exponential backoff and
dead-letter what keeps failing. Unsolicited messages to opted-out members are
suppressed here, so every sender honours opt-out.
"""

from __future__ import annotations

from typing import Any

import asyncio
import contextlib
import logging
import secrets
from collections.abc import AsyncIterator, Awaitable, Callable
from datetime import datetime, timedelta

from tortoise.exceptions import IntegrityError
from prometheus_client import Counter
from tortoise.expressions import Q

from bot.core import metrics
from bot.core.clock import utcnow
from bot.core.channel_registry import ChannelRegistry, ChannelSender, SendError
from bot.core.messages import Outgoing, Reply
from bot.core.models import ChannelAccount, Member, OutboxMessage, TranscriptEntry
from bot.core.settings import Settings
from bot.core.state import remember_choices_of
from bot.core.stores import RateLimiter, StateStore, member_state_key
from bot.core.tasks import Background

log = logging.getLogger(__name__)

DUE_STATUSES = ("queued", "failed")
INLINE = "inline"  # provider_ref of a row answered on the request itself (passive reply)


OUTBOX_STALE = Counter(
    "everycsr_outbox_stale_updates",
    "Outbox state changes refused because the row's claim had passed to another worker "
    "(the first one was slow, not dead, and its lease expired)",
    ["channel", "step"],
)
OUTBOX_RENEWALS = Counter(
    "everycsr_outbox_lease_renewals", "Outbox sending leases renewed while a send was in flight", ["channel"]
)


def new_claim_token() -> str:
    """A fencing token: unique per claim, so a worker whose lease passed to another cannot
    change the row the other one now owns."""
    return secrets.token_hex(12)


# --- the row lease: one rule for the in-process worker, the queue workers and inline senders
async def claim_row(msg_id: int, lease_seconds: float, *, due_only: bool = True) -> str | None:
    """Take a queued/failed row for sending (``sending``, leased until ``next_attempt_at``);
    returns the claim's token (None: not taken).

    A conditional update, so of several processes exactly one wins. Every later change of
    the row by the claimant names the token (``WHERE id=? AND claim_token=?``): when its
    lease expired and another worker re-claimed the row, the late change matches nothing.
    ``due_only=False``: the channel that stored the row to answer inline claims it before
    it is due (the outbox gives it that grace, then sends it itself)."""
    now = utcnow()
    token = new_claim_token()
    q = OutboxMessage.filter(id=msg_id, status__in=DUE_STATUSES)
    if due_only:
        q = q.filter(Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lte=now))
    taken = await q.update(status="sending", claim_token=token, next_attempt_at=now + timedelta(seconds=lease_seconds))
    return token if taken else None


async def renew_lease(msg_id: int, token: str, lease_seconds: float) -> bool:
    """Push the claim's lease on while its send is in flight; False when the claim is no
    longer this token's (the row was taken back and re-claimed, or already finished)."""
    return bool(
        await OutboxMessage.filter(id=msg_id, status="sending", claim_token=token).update(
            next_attempt_at=utcnow() + timedelta(seconds=lease_seconds)
        )
    )


def _stale(msg_id: int, channel: str, step: str) -> None:
    OUTBOX_STALE.labels(channel or "?", step).inc()
    log.warning("outbox %s (%s): %s by a worker whose claim passed to another; nothing changed", msg_id, channel, step)


async def update_claimed(
    msg_id: int, token: str | None, *, step: str, channel: str = "", only_sending: bool = False, **fields: object
) -> bool:
    """Change a claimed row only while the claim is still ``token``'s; a stale claimant's
    change matches no row and is logged and counted (``everycsr_outbox_stale_updates``).
    ``token=None`` (a caller holding no token) changes the row only while it is ``sending``;
    ``only_sending``: not once this claim has recorded an outcome (a crash after "sent")."""
    q = OutboxMessage.filter(id=msg_id)
    q = q.filter(claim_token=token) if token else q.filter(status="sending")
    if only_sending:
        q = q.filter(status="sending")
    if await q.update(**fields):
        return True
    _stale(msg_id, channel, step)
    return False


async def mark_sent(
    msg_id: int,
    *,
    attempts: int,
    provider_ref: str = "",
    segments: int | None = None,
    token: str | None = None,
    channel: str = "",
) -> bool:
    """The provider accepted the message: record it before anything else acknowledges it.
    False when the claim ``token`` is no longer the row's (another worker owns it now)."""
    fields: dict[str, Any] = dict(
        status="sent",
        attempts=attempts,
        sent_at=utcnow(),
        provider_ref=provider_ref[:128],
        segments=segments,
        last_error="",
    )
    if token is None:  # a caller without a token (legacy inline path): unconditional, as before
        await OutboxMessage.filter(id=msg_id).update(**fields)
        return True
    return await update_claimed(msg_id, token, step="mark_sent", channel=channel, **fields)


class LeaseKeeper:
    """Renews a claimed row's lease every third of it while a send is in flight, so a
    provider call longer than the lease does not lose the row to another worker.
    ``lost`` turns True when a renewal found the claim gone."""

    def __init__(self, msg_id: int, token: str, lease_seconds: float, channel: str = "") -> None:
        self.msg_id, self.token, self.lease, self.channel = msg_id, token, lease_seconds, channel
        self.lost = False

    async def _run(self) -> None:
        while True:
            await asyncio.sleep(self.lease / 3)
            try:
                if not await renew_lease(self.msg_id, self.token, self.lease):
                    self.lost = True
                    _stale(self.msg_id, self.channel, "renew")
                    return
                OUTBOX_RENEWALS.labels(self.channel or "?").inc()
            except asyncio.CancelledError:
                raise
            except Exception as exc:  # database hiccup: try again at the next beat
                log.warning("outbox %s: lease renewal failed: %s", self.msg_id, exc)

    @contextlib.asynccontextmanager
    async def running(self) -> AsyncIterator[LeaseKeeper]:
        task = asyncio.create_task(self._run(), name=f"outbox-lease-{self.msg_id}")
        try:
            yield self
        finally:
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)


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
        self.on_stored: list[Callable[[int], Awaitable[object]]] = []

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
        self._inflight = Background("outbox send")
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
            token = await claim_row(msg_id, self.settings.outbox_lease_seconds)
            if token is None:
                continue  # another worker has it
            await self._sem.acquire()
            self._inflight.spawn(self._send_guarded(msg_id, token), name=f"outbox-send-{msg_id}")
            started += 1
        return started

    async def wait_idle(self) -> None:
        await self._inflight.wait()

    async def _send_guarded(self, msg_id: int, token: str) -> None:
        try:
            await self.send_one(msg_id, token)
        except Exception:
            log.exception("outbox send %s crashed", msg_id)
            await self.crashed(msg_id, token)
        finally:
            self._sem.release()

    async def crashed(self, msg_id: int, token: str | None) -> None:
        """A send that raised (our bug, not the provider's): try again in 30 s, if the row
        is still this claim's."""
        await update_claimed(
            msg_id,
            token,
            step="crashed",
            only_sending=True,
            status="failed",
            next_attempt_at=utcnow() + timedelta(seconds=30),
            last_error="internal error",
        )

    async def send_one(self, msg_id: int, token: str | None = None) -> str:
        """Send one claimed (status ``sending``) message; returns its new status, or
        ``stale`` when the claim passed to another worker before this one recorded its
        outcome (nothing is changed then). ``token``: the claim's (``claim_row``); without
        it, the row's current token is used (a caller that has just claimed it)."""
        msg = await OutboxMessage.get(id=msg_id)
        token = token or msg.claim_token
        member = await Member.get_or_none(id=msg.member_id) if msg.member_id else None
        if member and member.opted_out and msg.purpose not in ("reply", "agent", "survey", "system"):
            return await self._finish(msg, token, "suppressed", "member opted out")
        sender = self.channels.get(msg.channel)
        if sender is None:
            return await self._finish(msg, token, "held", f"channel {msg.channel} is not configured")
        locale = member.locale if member else self.settings.default_locale
        attempts = msg.attempts + 1
        reply = Reply.from_dict(msg.payload)
        keeper = LeaseKeeper(msg.id, token, self.settings.outbox_lease_seconds, msg.channel) if token else None
        async with keeper.running() if keeper else contextlib.nullcontext():
            await pace(self.limiter, sender, msg.address)
            if keeper is not None and keeper.lost:
                return "stale"  # waited for a slot past the lease and lost the row: not sent by us
            try:
                result = await sender.send(msg, reply, locale)
            except SendError as err:
                metrics.OUTBOX_FAILED.labels(msg.channel, "hold" if err.hold else "error").inc()
                if err.unreachable and msg.member_id:
                    await ChannelAccount.filter(member_id=msg.member_id, channel=msg.channel).update(
                        active=False, inactive_reason=err.reason[:64]
                    )
                if err.permanent or err.unreachable:
                    return await self._finish(msg, token, "dead", err.reason, attempts=attempts)
                if err.hold:
                    return await self._finish(msg, token, "held", err.reason, attempts=attempts)
                if err.ambiguous:
                    return await self._finish(
                        msg, token, "dead", f"{err.reason} (may have been delivered; not repeated)", attempts=attempts
                    )
                return await self._retry(msg, token, attempts, err.reason, err.retry_after)
            except Exception as exc:  # network errors and the like
                metrics.OUTBOX_FAILED.labels(msg.channel, "exception").inc()
                return await self._retry(msg, token, attempts, f"{type(exc).__name__}: {exc}"[:500], None)
        metrics.OUTBOX_SENT.labels(msg.channel).inc()
        if not await mark_sent(
            msg.id,
            attempts=attempts,
            provider_ref=result.provider_ref,
            segments=result.segments,
            token=token,
            channel=msg.channel,
        ):
            return "stale"
        if reply.choices and msg.member_id and self.state is not None:
            await self._remember_choices(msg.member_id, reply)
        return "sent"

    async def _remember_choices(self, member_id: int, reply: Reply) -> None:
        """A later "1" answers the choices of a message sent now (SMS, WeChat text)."""
        if self.state is not None:
            key = member_state_key(member_id)
            await remember_choices_of(self.state, key, reply.choices, self.settings.state_ttl_seconds)

    async def _retry(
        self, msg: OutboxMessage, token: str | None, attempts: int, reason: str, retry_after: float | None
    ) -> str:
        if attempts >= self.settings.outbox_max_attempts:
            return await self._finish(msg, token, "dead", reason, attempts=attempts)
        delay = (
            retry_after if retry_after is not None else self.settings.outbox_backoff_base_seconds * 2 ** (attempts - 1)
        )
        if not await update_claimed(
            msg.id,
            token,
            step="retry",
            channel=msg.channel,
            status="failed",
            attempts=attempts,
            last_error=reason[:1000],
            next_attempt_at=utcnow() + timedelta(seconds=delay),
        ):
            return "stale"
        self.outbox.wakeup.set()
        return "failed"

    async def _finish(
        self, msg: OutboxMessage, token: str | None, status: str, reason: str, *, attempts: int | None = None
    ) -> str:
        if not await update_claimed(
            msg.id,
            token,
            step=status,
            channel=msg.channel,
            status=status,
            last_error=reason[:1000],
            attempts=attempts if attempts is not None else msg.attempts,
        ):
            return "stale"
        return status

    async def stop(self) -> None:
        self._stopping = True
        self.outbox.wakeup.set()
        await self.wait_idle()
