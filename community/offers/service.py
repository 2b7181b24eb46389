"""Offers for one answer: build the context, pick the offer, record it, attach it.

Channel-independent; ``handlers/offers.py`` calls :func:`offer_for_answer` after an
answer and :func:`accept` when the member presses the offer's button.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timezone
from functools import lru_cache
from typing import Any

from tortoise.exceptions import IntegrityError

from bot.core.messages import Reply
from bot.core.models import Member
from bot.core.settings import Settings
from bot.core.state import ConversationState
from community.offers.engine import (
    UNKNOWN,
    OfferContext,
    OfferHistory,
    Rules,
    _member_reasons,
    choose,
    conversation_block,
    evaluate_all,
    record_impression,
    tags_text,
)
from community.offers.catalog import OfferCatalog
from community.offers.models import Offer, OfferEvent
from community.offers.render import attach_offer, member_fields, new_token, render_body

ANSWER_KINDS = ("answer", "answer_pick")


@lru_cache(maxsize=8)
def _rules(tz: str, quiet: str, cap: int) -> Rules:
    from zoneinfo import ZoneInfo

    from community.offers.engine import parse_quiet_hours

    return Rules(tz=ZoneInfo(tz), quiet_hours=parse_quiet_hours(quiet), max_per_member_per_day=cap)


def rules_for(settings: Settings) -> Rules:
    return _rules(settings.service_timezone, settings.offers_quiet_hours, settings.offers_max_per_member_per_day)


def base_url(settings: Settings) -> str:
    """Where members' links point: the public URL behind a proxy, else this server."""
    return settings.public_url or f"http://{settings.host}:{settings.port}"


async def build_context(
    member: Member,
    *,
    channel: str,
    locale: str,
    question: str,
    item_id: int | None,
    category: str,
    state: ConversationState | Mapping[str, Any] | None = None,
    now: datetime | None = None,
    ticket: Any = UNKNOWN,
) -> OfferContext:
    return OfferContext(
        member_id=member.id,
        opted_out=member.opted_out,
        tags=tuple(member.tags or ()),
        channel=channel,
        locale=locale,
        question=question,
        item_id=item_id,
        category=category,
        now=now or datetime.now(timezone.utc),
        blocked_by=await conversation_block(member.id, state, ticket),
    )


async def offer_for_answer(
    member: Member,
    reply: Reply,
    octx: OfferContext,
    settings: Settings,
    catalog: OfferCatalog,
) -> Offer | None:
    """Append the best eligible offer of ``catalog`` to ``reply`` and record the impression."""
    rules = rules_for(settings)
    # the member-wide exclusions need no offer and no history: skip the queries
    if _member_reasons(octx, OfferHistory(), rules):
        return None
    best = choose(await evaluate_all(octx, rules, await catalog.active(octx.now)))
    if best is None:
        return None
    body = render_body(
        best.offer,
        member_fields(name=member.display_name, locale=octx.locale, channel=octx.channel, tags=list(octx.tags)),
    )
    token = new_token()
    if await record_impression(best, octx, rules, token) is None:
        return None
    attach_offer(reply, best.offer, token, body, base_url(settings))
    return best.offer


@dataclass(slots=True)
class Followed:
    """A click or acceptance resolved to its impression."""

    offer: Offer
    new: bool  # False: already recorded (a retry or a second tap)


async def follow(token: str, kind: str, *, member_id: int | None = None) -> Followed | None:
    """Record a click or acceptance of the impression ``token`` (once per token)."""
    impression = await OfferEvent.get_or_none(token=token[:32], kind="impression").select_related("offer")
    if impression is None or (member_id is not None and impression.member_id != member_id):
        return None
    try:
        await OfferEvent.create(
            offer_id=impression.offer_id,
            kind=kind,
            token=impression.token,
            member_id=impression.member_id,
            channel=impression.channel,
            item_id=impression.item_id,
            category=impression.category,
            tags=impression.tags,
            tags_text=tags_text(impression.tags or []),
            query=impression.query,
        )
        new = True
    except IntegrityError:
        new = False
    return Followed(offer=impression.offer, new=new)
