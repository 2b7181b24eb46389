"""One message through the service: dedup -> member -> handler -> transcript -> replies."""
from __future__ import annotations

import logging
import re
import time
from datetime import datetime, timedelta, timezone

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from bot import metrics, point_queries
from bot.i18n import DEFAULT_LOCALE, is_traditional, normalize_locale
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
    if len(_LATIN_WORD.findall(text)) >= 2:  # one word may be a code such as CXLL
        return "en"
    return fallback


async def get_or_create_account(
    channel: str, external_id: str, *, display_name: str = "", locale: str | None = None,
    chat_id: str = "", seen_at: datetime | None = None,
) -> ChannelAccount:
    """The sender's account with its member; a first contact creates both, already
    marked as seen at ``seen_at`` (so the first message writes no extra updates)."""
    account = await point_queries.get_or_none(ChannelAccount, "member", channel=channel, external_id=external_id)
    if account:
        return account
    try:
        async with in_transaction():
            member = await Member.create(display_name=display_name[:128], locale=locale or DEFAULT_LOCALE,
                                         last_seen_at=seen_at)
            account = await ChannelAccount.create(member=member, channel=channel, external_id=external_id,
                                                  chat_id=chat_id, last_inbound_at=seen_at)
    except IntegrityError:
        # a concurrent first message of the same person won the race
        account = await ChannelAccount.get(channel=channel, external_id=external_id).select_related("member")
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
        account = await get_or_create_account(
            incoming.channel, incoming.user, display_name=incoming.display_name, locale=hint,
            chat_id="" if group else chat, seen_at=now,
        )
        member = account.member
        updates: dict[str, object] = {}
        # last contact is kept to the minute: enough for service windows, one write less per message
        if account.last_inbound_at is None or now - account.last_inbound_at > LAST_SEEN_PRECISION:
            updates["last_inbound_at"] = now
        if account.chat_id != chat and not group:
            updates["chat_id"] = chat
        if not account.active and incoming.event != "unsubscribe":
            updates.update(active=True, inactive_reason="")
        if updates:
            await ChannelAccount.filter(id=account.id).update(**updates)
            for k, v in updates.items():
                setattr(account, k, v)
        if member.last_seen_at is None or now - member.last_seen_at > LAST_SEEN_PRECISION:
            await Member.filter(id=member.id).update(last_seen_at=now)
            member.last_seen_at = now

        try:
            entry = await TranscriptEntry.create(
                member_id=member.id,
                channel=incoming.channel,
                direction="in",
                text=incoming.text or "",
                action=(incoming.action or incoming.event or "")[:128],
                msg_id=incoming.msg_id,
            )
        except IntegrityError as exc:
            raise DuplicateMessage(incoming.dedup_key) from exc

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
            await TranscriptEntry.bulk_create(
                [
                    TranscriptEntry(
                        member_id=member.id,
                        channel=incoming.channel,
                        direction="out",
                        text=r.text,
                        kind=r.kind,
                        item_id=r.item_id,
                        confidence=r.confidence,
                        payload={"choices": [c.action for c in r.choices]} if r.choices else None,
                    )
                    for r in replies
                ]
            )
        return replies
