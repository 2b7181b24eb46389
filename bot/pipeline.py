"""One message through the service: dedup -> member -> handler -> transcript -> replies."""
from __future__ import annotations

import logging
import re
import time
from collections.abc import Callable
from datetime import datetime, timedelta, timezone

from tortoise.exceptions import IntegrityError

from bot import metrics, point_queries
from bot.group_commit import GroupCommit, WriteJob, commit
from bot.i18n import DEFAULT_LOCALE, is_traditional, normalize_locale
from bot.pinyin import romanized_syllables
from bot.messages import MAX_TEXT, Incoming, Reply, replies_from_json, replies_to_json
from bot.models import ChannelAccount, Member, TranscriptEntry
from bot.services import Services
from bot.stores import member_state_key
from handlers.router import Context, Router

log = logging.getLogger(__name__)

_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")


LAST_SEEN_PRECISION = timedelta(seconds=60)


class DuplicateMessage(Exception):
    """The channel delivered a message we already processed."""


state_key = member_state_key


def detect_locale(text: str, fallback: str) -> str:
    """Language of one message: Latin-only text is English, Chinese keeps zh_CN/zh_TW."""
    if not text:
        return fallback
    if _CJK.search(text):
        if fallback == "zh_TW":
            return fallback
        return "zh_TW" if is_traditional(text) else "zh_CN"
    words = _LATIN_WORD.findall(text)
    # one word may be a code such as CXLL; keyboard mashing ("asdkjh qwpoe zzxv") is no
    # language, and romanised pinyin ("liuliang zenme cha") is Chinese
    if sum(1 for w in words if _wordlike(w)) >= 2:
        if romanized_syllables(text.lower()) is not None:
            return fallback if fallback.startswith("zh") else DEFAULT_LOCALE
        return "en"
    return fallback


_CONSONANT_RUN = re.compile(r"[^aeiouy]{5,}")


def _wordlike(word: str) -> bool:
    """Could be an English word: has a vowel, no run of five consonants."""
    w = word.lower()
    return any(c in "aeiouy" for c in w) and _CONSONANT_RUN.search(w) is None


FirstWrites = Callable[[WriteJob, Member], None]


async def account_for(
    writes: GroupCommit | None, channel: str, external_id: str, *, display_name: str = "",
    locale: str | None = None, chat_id: str = "", seen_at: datetime | None = None,
    first_writes: FirstWrites | None = None,
) -> tuple[ChannelAccount, bool]:
    """The sender's account with its member, and whether this call created them.

    A first contact creates both in one write job, already marked as seen at ``seen_at``
    (so the first message writes no extra updates); ``first_writes`` adds the caller's
    own writes for the new member to that job, committed with it or not at all. The job
    goes through ``writes`` (grouped with other messages' writes) or, without it, alone."""
    account = await point_queries.get_or_none(ChannelAccount, "member", channel=channel, external_id=external_id)
    if account:
        return account, False
    member = Member(display_name=display_name[:128], locale=locale or DEFAULT_LOCALE, last_seen_at=seen_at)
    account = ChannelAccount(channel=channel, external_id=external_id, chat_id=chat_id, last_inbound_at=seen_at)
    job = WriteJob().insert(member).insert(account, member_id=member)
    if first_writes:
        first_writes(job, member)
    try:
        await (writes.run(job) if writes else commit(job))
    except IntegrityError:
        # a concurrent first message of the same person won the race
        found = await point_queries.get_or_none(ChannelAccount, "member", channel=channel, external_id=external_id)
        if found is None:
            raise
        return found, False
    account.member = member
    return account, True


async def get_or_create_account(
    channel: str, external_id: str, *, display_name: str = "", locale: str | None = None, chat_id: str = "",
) -> ChannelAccount:
    """The account (with its member) of someone who may never have written to us."""
    account, _created = await account_for(None, channel, external_id, display_name=display_name, locale=locale,
                                          chat_id=chat_id)
    return account


class Pipeline:
    def __init__(self, services: Services, router: Router) -> None:
        self.services = services
        self.router = router

    async def process(self, incoming: Incoming) -> list[Reply]:
        """Process once; a retry of the same message gets the first answer back."""
        started = time.perf_counter()
        key = incoming.dedup_key
        ttl = self.services.settings.dedup_ttl_seconds
        dedup = self.services.dedup
        if key and not await dedup.claim(key, ttl):
            metrics.DUPLICATES.labels(incoming.channel).inc()
            cached = await dedup.wait_result(key, timeout=self.services.settings.wechat_reply_deadline_seconds)
            return replies_from_json(cached) if cached else []
        try:
            replies = await self._process(incoming)
        except DuplicateMessage:
            metrics.DUPLICATES.labels(incoming.channel).inc()
            replies = []
        except BaseException:
            if key:
                await dedup.release(key)
            raise
        if key:
            await dedup.store_result(key, replies_to_json(replies), ttl)
        metrics.INBOUND.labels(incoming.channel).inc()
        metrics.LATENCY.labels(incoming.channel).observe(time.perf_counter() - started)
        for r in replies:
            metrics.ANSWERS.labels(incoming.channel, r.kind).inc()
        return replies

    async def _process(self, incoming: Incoming) -> list[Reply]:
        if incoming.text and len(incoming.text) > MAX_TEXT:
            incoming.text = incoming.text[:MAX_TEXT]
        hint = normalize_locale(incoming.locale_hint)
        now = datetime.now(timezone.utc)
        chat = incoming.chat or incoming.user
        group = bool(incoming.meta.get("group"))
        entry = TranscriptEntry(
            channel=incoming.channel,
            direction="in",
            text=incoming.text or "",
            action=(incoming.action or incoming.event or "")[:128],
            msg_id=incoming.msg_id,
        )
        writes = self.services.writes
        account, new_member = await account_for(
            writes, incoming.channel, incoming.user, display_name=incoming.display_name, locale=hint,
            chat_id="" if group else chat, seen_at=now,
            first_writes=lambda job, member: job.insert(entry, member_id=member),
        )
        member = account.member
        if not new_member:
            await self._record_returning(account, entry, incoming, now, chat, group)

        locale = member.locale
        if not member.locale_explicit:
            locale = detect_locale(incoming.text or "", hint or member.locale)
        incoming.meta["locale"] = locale  # channels render numbered choices in it
        skey = state_key(member.id)
        state = await self.services.state.get(skey)
        before = dict(state)
        ctx = Context(
            incoming=incoming,
            member=member,
            account=account,
            locale=locale,
            state=state,
            services=self.services,
            _=self.services.translator.bind(locale),
            transcript_id=entry.id,
            new_member=new_member,
        )
        try:
            replies = await self.router.dispatch(ctx)
        except Exception:
            metrics.HANDLER_ERRORS.labels(incoming.channel).inc()
            log.exception("handler failed for %s", incoming.dedup_key or incoming.user)
            replies = [Reply(text=ctx._("Sorry, something went wrong on our side. Please try again in a moment."), kind="error")]

        with_choices = [r for r in replies if r.choices]
        if with_choices:
            state["choices"] = [c.action for c in with_choices[-1].choices]
        elif replies:
            state.pop("choices", None)
        if state != before:
            await self.services.state.set(skey, state, self.services.settings.state_ttl_seconds)
        if replies:
            job = WriteJob()
            for r in replies:
                job.insert(TranscriptEntry(
                    member_id=member.id,
                    channel=incoming.channel,
                    direction="out",
                    text=r.text,
                    kind=r.kind,
                    item_id=r.item_id,
                    confidence=r.confidence,
                    payload={"choices": [c.action for c in r.choices]} if r.choices else None,
                ))
            await writes.run(job)
        return replies

    async def _record_returning(
        self, account: ChannelAccount, entry: TranscriptEntry, incoming: Incoming, now: datetime, chat: str,
        group: bool,
    ) -> None:
        """A known sender's inbound message, with the account and member touch-ups it implies,
        in one job: a retried message id writes none of it."""
        member = account.member
        job = WriteJob()
        entry.member_id = member.id
        job.insert(entry)
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
