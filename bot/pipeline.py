"""One message through the service: dedup -> member -> handler -> transcript -> replies."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import datetime, timedelta, timezone
from typing import Any

from tortoise.exceptions import IntegrityError
from tortoise.models import Model

from bot.core import metrics
from bot.core.accounts import account_for, state_key
from bot.core.group_commit import Row
from bot.core.point_queries import Beside
from bot.core.i18n import detect_locale, normalize_locale
from bot.core.inbound import Handled
from bot.core.state import ConversationState
from bot.core.messages import MAX_TEXT, Incoming, Reply, replies_from_json, replies_to_json
from bot.core.models import ChannelAccount, Member, TranscriptEntry
from bot.core.render import in_script
from bot.core.stores import Claim, DedupStore
from bot.core.services import Services
from handlers.router import Context, Domains, Router

log = logging.getLogger(__name__)

LAST_SEEN_PRECISION = timedelta(seconds=60)


class DuplicateMessage(Exception):
    """The channel delivered a message we already processed."""


class LeaseLost(Exception):
    """This worker's processing lease passed to another (it stalled past the lease and a
    retry took the message over): its answer must not be recorded or sent."""


def reply_locale(member: Member, hint: str | None) -> str:
    """The one rule for the language a member is answered in: their own choice, else what
    the channel says of them now (the page's language, the app's setting), else the language
    they were first answered in. One message in other words never flips it: a zh_CN member
    typing "helper on" is still answered in Chinese."""
    if member.locale_explicit:
        return member.locale
    return hint or member.locale


class _Lease:
    """Renews a message's processing lease every third of it while the message is handled.

    A timer, not a task: most messages are done long before the first renewal is due, and
    then nothing but the timer was ever made."""

    def __init__(self, dedup: DedupStore, key: str, token: str, seconds: float) -> None:
        self.dedup, self.key, self.token, self.seconds = dedup, key, token, seconds
        self._loop = asyncio.get_running_loop()
        self._timer: asyncio.TimerHandle | None = self._loop.call_later(seconds / 3, self._due)
        self._task: asyncio.Task[None] | None = None
        self.lost = False
        # until then no other worker can have taken the message over (its lease cannot have
        # run out yet, with half a lease to spare for the claim's round trip and clock drift)
        self._sure_until = self._loop.time() + seconds / 2

    async def held(self) -> bool:
        """Still this worker's message? Asked right before the durable writes. Most messages
        are answered well inside their lease and cost nothing here; a slow one asks the
        store, renewing the lease as it asks, so its writes start with a fresh lease."""
        if self.lost:
            return False
        if self._loop.time() < self._sure_until:
            return True
        asked = self._loop.time()
        if await self.dedup.renew(self.key, self.token, self.seconds):
            self._sure_until = asked + self.seconds / 2
        else:
            self.lost = True
        return not self.lost

    def _due(self) -> None:
        self._timer = None
        self._task = self._loop.create_task(self._renew())

    async def _renew(self) -> None:
        try:
            asked = self._loop.time()
            if not await self.dedup.renew(self.key, self.token, self.seconds):
                self.lost = True
                log.warning("%s: lease lost while processing", self.key)
                return
            self._sure_until = asked + self.seconds / 2
        except Exception as exc:  # Redis hiccup: try again at the next beat
            log.warning("%s: lease renewal failed: %s", self.key, exc)
        if self._task is not None:
            self._timer = self._loop.call_later(self.seconds / 3, self._due)

    def stop(self) -> None:
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if self._task is not None:
            self._task.cancel()
            self._task = None


class Pipeline:
    """The :class:`bot.core.inbound.MessageHandler` channels are given: one message through
    dedup, member, handlers and transcript."""

    def __init__(
        self, services: Services, router: Router, domains: Domains, *, read_with_sender: tuple[Beside, ...] = ()
    ) -> None:
        self.services = services
        self.router = router
        self.domains = domains  # handed to every handler's Context as it is
        # rows of the member's the handlers need on every message, read in the account's query
        # and handed over in ``ctx.extra`` by name (the live ticket: community.inbox.LIVE_TICKET)
        self.read_with_sender = read_with_sender

    async def process(self, incoming: Incoming) -> list[Reply]:
        """Process once; a retry of the same message gets the first answer back."""
        return (await self.handle(incoming)).replies

    async def handle(self, incoming: Incoming, *, wait: float | None = None) -> Handled:
        """Process once under a leased dedup claim; see :class:`Handled`.

        ``wait``: how long a retry waits for a live owner's answer; by default long enough
        for a dead owner's lease (``dedup_lease_seconds``) to lapse, so the waiting retry
        takes the message over instead of going away empty-handed. (WeChat's view answers
        at its own deadline and lets this go on in the background.)"""
        started = time.perf_counter()
        key = incoming.dedup_key
        settings = self.services.settings
        dedup = self.services.dedup
        token = ""
        if key:
            if wait is None:
                wait = max(settings.wechat_reply_deadline_seconds, settings.dedup_lease_seconds + 0.5)
            claim = await self._claim(key, wait)
            if claim.status != "owner":
                metrics.DUPLICATES.labels(incoming.channel).inc()
                if claim.status == "busy":
                    return Handled([], "pending")
                return Handled(replies_from_json(claim.result) if claim.result else [], "repeat")
            token = claim.token
            if claim.took_over:
                metrics.DEDUP_TAKEOVERS.labels(incoming.channel).inc()
                log.warning("%s: taken over after its worker's lease lapsed", key)
        lease = _Lease(self.services.dedup, key, token, settings.dedup_lease_seconds) if key else None
        try:
            replies, repeat = await self._process(incoming, lease)
        except LeaseLost:
            # another worker owns the message now and answers it: this one records and sends
            # nothing, and leaves the key alone (it is not this worker's to release)
            lease.stop()  # type: ignore[union-attr]
            metrics.DEDUP_LEASE_LOST.labels(incoming.channel).inc()
            log.warning("%s: lease lost before recording the answer; dropped (the new owner answers)", key)
            return Handled([], "pending")
        except BaseException:
            if lease is not None:
                lease.stop()
                await dedup.release(key, token)  # type: ignore[arg-type]
            raise
        if lease is not None:
            lease.stop()
        if key and not await dedup.finish(key, token, replies_to_json(replies), settings.dedup_ttl_seconds):
            metrics.DEDUP_LEASE_LOST.labels(incoming.channel).inc()
            log.warning("%s: finished after another worker took it over (stalled past the lease)", key)
        if repeat:
            metrics.DUPLICATES.labels(incoming.channel).inc()
            return Handled(replies, "repeat")
        metrics.INBOUND.labels(incoming.channel).inc()
        metrics.LATENCY.labels(incoming.channel).observe(time.perf_counter() - started)
        for r in replies:
            metrics.ANSWERS.labels(incoming.channel, r.kind).inc()
        return Handled(replies)

    async def _claim(self, key: str, wait: float) -> Claim:
        """Claim the message; while a live owner holds it, wait for its answer (or for its
        lease to lapse, then take over) up to ``wait`` seconds."""
        settings = self.services.settings
        dedup = self.services.dedup
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait
        while True:
            claim = await dedup.claim(key, settings.dedup_lease_seconds, settings.dedup_ttl_seconds)
            remaining = deadline - loop.time()
            if claim.status != "busy" or remaining <= 0:
                return claim
            result = await dedup.wait_result(key, min(remaining, claim.lease_left + 0.01))
            if result is not None:
                return Claim("done", result=result)

    async def _process(self, incoming: Incoming, lease: _Lease | None = None) -> tuple[list[Reply], bool]:
        """The replies, and whether they are a repeat of an answer recorded earlier.
        Raises :class:`LeaseLost` before the durable writes when ``lease`` is gone."""
        if incoming.text and len(incoming.text) > MAX_TEXT:
            incoming.text = incoming.text[:MAX_TEXT]
        hint = normalize_locale(incoming.locale_hint)
        now = datetime.now(timezone.utc)
        chat = incoming.chat or incoming.user
        group = bool(incoming.meta.get("group"))
        entry = {
            "channel": incoming.channel,
            "direction": "in",
            "text": incoming.text or "",
            "action": (incoming.action or incoming.event or "")[:128],
            "msg_id": incoming.msg_id,
        }
        writes = self.services.writes
        # a first contact without a channel hint is answered in the language it wrote in
        first_locale = hint or detect_locale(incoming.text or "", self.services.settings.default_locale)
        inbound: list[Row[TranscriptEntry]] = []
        beside: dict[str, Model | None] = {}
        account, new_member = await account_for(
            writes,
            incoming.channel,
            incoming.user,
            display_name=incoming.display_name,
            locale=first_locale,
            chat_id="" if group else chat,
            seen_at=now,
            first_writes=lambda job, member: inbound.append(job.insert(TranscriptEntry, member_id=member, **entry)),
            beside=self.read_with_sender,
            found_beside=beside,
        )
        member = account.member
        if new_member:
            entry_id = inbound[0].id
        else:
            try:
                entry_id = await self._record_returning(account, entry, incoming, now, chat, group)
            except DuplicateMessage:
                prior = await self._prior(incoming, now)
                if prior is None:  # answered before this version kept answers, or long ago
                    return [], True
                if prior.payload and "replies" in prior.payload:
                    metrics.RECOVERED_ANSWERS.labels(incoming.channel, "recorded").inc()
                    return [Reply.from_dict(d) for d in prior.payload["replies"]], True
                # recorded, never answered: the worker died between the two. Answer it now,
                # as that message (same transcript id, so handlers' idempotency keys hold).
                metrics.RECOVERED_ANSWERS.labels(incoming.channel, "answered_now").inc()
                log.warning("%s: recorded but never answered (worker lost); answering now", incoming.dedup_key)
                entry_id = prior.id

        locale = reply_locale(member, hint)
        incoming.meta["locale"] = locale  # channels render numbered choices in it
        skey = state_key(member.id)
        stored = await self.services.state.get(skey)
        state = ConversationState.from_json(stored)
        ctx = Context(
            incoming=incoming,
            member=member,
            account=account,
            locale=locale,
            state=state,
            services=self.services,
            domains=self.domains,
            _=self.services.translator.bind(locale),
            transcript_id=entry_id,
            new_member=new_member,
            root=self.router,
            extra=dict(beside),
        )
        try:
            replies = await self.router.dispatch(ctx)
        except Exception:
            metrics.HANDLER_ERRORS.labels(incoming.channel).inc()
            log.exception("handler failed for %s", incoming.dedup_key or incoming.user)
            replies = [
                Reply(
                    text=ctx._("Sorry, something went wrong on our side. Please try again in a moment."), kind="error"
                )
            ]
        replies = in_script(replies, locale)

        if lease is not None and not await lease.held():
            raise LeaseLost(incoming.dedup_key)
        if replies:  # the last reply's numbered choices are what a later "1" picks
            state.remember_choices(next((r.choices for r in reversed(replies) if r.choices), ()))
        after = state.to_json()
        if after != stored:
            await self.services.state.set(skey, after, self.services.settings.state_ttl_seconds)
        # the answer is recorded on the inbound row in the same commit as the outbound rows:
        # a retry whose dedup key is gone (or whose first worker died) finds it there
        job = writes.job().update(TranscriptEntry, entry_id, payload={"replies": [r.to_dict() for r in replies]})
        for r in replies:
            job.insert(
                TranscriptEntry,
                member_id=member.id,
                channel=incoming.channel,
                direction="out",
                text=r.text,
                kind=r.kind,
                item_id=r.item_id,
                confidence=r.confidence,
                # the actions (what a tap sends) and, beside them, the labels the member saw
                payload={"choices": [c.action for c in r.choices], "labels": [c.label for c in r.choices]}
                if r.choices
                else None,
            )
        await writes.run(job)
        return replies, False

    async def _prior(self, incoming: Incoming, now: datetime) -> TranscriptEntry | None:
        """The inbound row a retried message id already has, if recent enough to act on."""
        prior = await TranscriptEntry.get_or_none(channel=incoming.channel, msg_id=incoming.msg_id)
        if prior is None or prior.direction != "in":
            return None
        if prior.created_at < now - timedelta(seconds=self.services.settings.dedup_ttl_seconds):
            return None
        return prior

    async def _record_returning(
        self,
        account: ChannelAccount,
        entry: dict[str, Any],
        incoming: Incoming,
        now: datetime,
        chat: str,
        group: bool,
    ) -> Any:
        """A known sender's inbound message, with the account and member touch-ups it implies,
        in one job: a retried message id writes none of it. Returns the message's row id."""
        member = account.member
        job = self.services.writes.job()
        row = job.insert(TranscriptEntry, member_id=member.id, **entry)
        updates: dict[str, object] = {}
        # last contact is kept to the minute: enough for service windows, one write less per message
        if account.last_inbound_at is None or now - account.last_inbound_at > LAST_SEEN_PRECISION:
            updates["last_inbound_at"] = now
        if account.chat_id != chat and not group:
            updates["chat_id"] = chat
        if not account.active and incoming.event != "unsubscribe":
            updates.update(active=True, inactive_reason="")
        if updates:
            job.update(ChannelAccount, account.id, **updates)
        seen = member.last_seen_at is None or now - member.last_seen_at > LAST_SEEN_PRECISION
        if seen:
            job.update(Member, member.id, last_seen_at=now)
        try:
            await self.services.writes.run(job)
        except IntegrityError as exc:
            raise DuplicateMessage(incoming.dedup_key) from exc
        for k, v in updates.items():
            setattr(account, k, v)
        if seen:
            member.last_seen_at = now
        return row.id
