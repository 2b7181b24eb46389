"""Which offer, if any, a member gets after an answer — and why not the others.

The rules are a pure function (:func:`evaluate`) of the offer, the answer's context,
the member's offer history and the service rules, so every exclusion can be tested
on its own; the async helpers around it load that context and history from storage.
"""

from __future__ import annotations

import fnmatch
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from tortoise.functions import Count

from bot.core.i18n import N_, Gettext
from bot.core.settings import Settings
from bot.core.state import ConversationState
from community.offers.models import Offer, OfferEvent
from bot.core.normalize import normalize

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class Reason:
    """Why an offer is not shown: a stable code and a translatable message."""

    code: str
    message: str  # msgid, translated where shown
    params: tuple[tuple[str, Any], ...] = ()

    def text(self, gettext: Gettext) -> str:
        return gettext(self.message, **dict(self.params))


@dataclass(frozen=True, slots=True)
class OfferContext:
    """The answer an offer would be appended to, and who it is for."""

    member_id: int | None
    opted_out: bool
    tags: tuple[str, ...]
    channel: str
    locale: str
    question: str
    item_id: int | None
    category: str
    now: datetime
    blocked_by: str | None = None  # "complaint" or "agent" while a person owns the conversation


@dataclass(slots=True)
class OfferHistory:
    member_offers_today: int = 0  # impressions of any offer to this member, this local day
    last_shown: dict[int, datetime] = field(default_factory=dict)  # offer id -> last impression to member
    impressions_today: dict[int, int] = field(default_factory=dict)  # offer id -> impressions today, all members


@dataclass(frozen=True, slots=True)
class Rules:
    tz: ZoneInfo
    quiet_hours: tuple[time, time] | None
    max_per_member_per_day: int

    @classmethod
    def from_settings(cls, settings: Settings) -> "Rules":
        return cls(
            tz=ZoneInfo(settings.service_timezone),
            quiet_hours=parse_quiet_hours(settings.offers_quiet_hours),
            max_per_member_per_day=settings.offers_max_per_member_per_day,
        )

    def day_start(self, now: datetime) -> datetime:
        """Start of the local day containing ``now``, in UTC."""
        local = now.astimezone(self.tz)
        return local.replace(hour=0, minute=0, second=0, microsecond=0).astimezone(timezone.utc)

    def in_quiet_hours(self, now: datetime) -> bool:
        if not self.quiet_hours:
            return False
        start, end = self.quiet_hours
        t = now.astimezone(self.tz).time()
        if start <= end:
            return start <= t < end
        return t >= start or t < end  # spans midnight, e.g. 22:00-08:00


@dataclass(slots=True)
class Verdict:
    offer: Offer
    reasons: list[Reason]
    score: int = 0  # how specifically the triggers matched

    @property
    def eligible(self) -> bool:
        return not self.reasons


def parse_quiet_hours(spec: str) -> tuple[time, time] | None:
    """``"22:00-08:00"`` -> (22:00, 08:00); empty -> None; anything else is a config error."""
    spec = spec.strip()
    if not spec:
        return None
    try:
        a, b = (part.strip() for part in spec.split("-"))
        start, end = time.fromisoformat(a), time.fromisoformat(b)
    except ValueError as exc:
        raise ValueError(f"BOT_OFFERS_QUIET_HOURS must look like 22:00-08:00, got {spec!r}") from exc
    return (start, end) if start != end else None


def tag_matches(pattern: str, tags: Iterable[str]) -> bool:
    pattern = pattern.strip().lower()
    return any(fnmatch.fnmatchcase(t.lower(), pattern) for t in tags)


def _member_reasons(ctx: OfferContext, history: OfferHistory, rules: Rules) -> list[Reason]:
    """Exclusions that hold for every offer."""
    out: list[Reason] = []
    if ctx.opted_out:
        out.append(Reason("opted_out", N_("The member opted out of marketing messages.")))
    if ctx.blocked_by == "complaint":
        out.append(Reason("complaint", N_("The member has an open complaint.")))
    elif ctx.blocked_by:
        out.append(Reason("agent", N_("A person is handling this member's conversation.")))
    if rules.in_quiet_hours(ctx.now):
        out.append(Reason("quiet_hours", N_("Quiet hours: no offers at this time of day.")))
    if history.member_offers_today >= rules.max_per_member_per_day:
        out.append(
            Reason(
                "member_daily_cap",
                N_("The member already saw %(n)s offer(s) today."),
                (("n", history.member_offers_today),),
            )
        )
    return out


def evaluate(offer: Offer, ctx: OfferContext, history: OfferHistory, rules: Rules) -> Verdict:
    """Every reason this offer may not be shown now (none = eligible), and its match score."""
    reasons = _member_reasons(ctx, history, rules)
    if not offer.active:
        reasons.append(Reason("inactive", N_("The offer is switched off.")))
    if offer.starts_at and ctx.now < offer.starts_at:
        reasons.append(Reason("not_started", N_("The offer has not started yet.")))
    if offer.ends_at and ctx.now >= offer.ends_at:
        reasons.append(Reason("ended", N_("The offer has ended.")))
    if offer.channels and ctx.channel not in offer.channels:
        reasons.append(Reason("channel", N_("Not offered on this channel.")))
    if offer.locales and ctx.locale not in offer.locales:
        reasons.append(Reason("locale", N_("Not offered in this language.")))

    score = 0
    context_triggers = bool(offer.trigger_items or offer.trigger_categories or offer.trigger_keywords)
    if context_triggers:
        q = normalize(ctx.question)
        if ctx.item_id is not None and ctx.item_id in offer.trigger_items:
            score += 4
        if ctx.category and ctx.category in offer.trigger_categories:
            score += 3
        if any(k and normalize(k) and normalize(k) in q for k in offer.trigger_keywords):
            score += 2
        if score == 0:
            reasons.append(Reason("no_trigger", N_("The answer and the question match none of its triggers.")))
    if offer.trigger_tags:
        if any(tag_matches(p, ctx.tags) for p in offer.trigger_tags):
            score += 1
        else:
            reasons.append(Reason("tags", N_("The member has none of its tags.")))

    if offer.daily_budget and history.impressions_today.get(offer.id, 0) >= offer.daily_budget:
        reasons.append(
            Reason("budget", N_("Today's budget of %(n)s impressions is spent."), (("n", offer.daily_budget),))
        )
    last = history.last_shown.get(offer.id)
    if last is not None and offer.repeat_days > 0 and ctx.now - last < timedelta(days=offer.repeat_days):
        reasons.append(
            Reason("repeat", N_("The member saw this offer within the last %(n)s day(s)."), (("n", offer.repeat_days),))
        )
    return Verdict(offer=offer, reasons=reasons, score=score)


def rank_key(v: Verdict) -> tuple[int, int, int]:
    return (v.offer.priority, v.score, -(v.offer.id or 0))


def choose(verdicts: Sequence[Verdict]) -> Verdict | None:
    """The best eligible offer: highest priority, then most specific match, then oldest."""
    eligible = [v for v in verdicts if v.eligible]
    return max(eligible, key=rank_key) if eligible else None


# --- loading context and history ---------------------------------------------------------


UNKNOWN: Any = object()  # "the live ticket was not looked up yet"


async def conversation_block(
    member_id: int, state: ConversationState | Mapping[str, Any] | None, ticket: Any = UNKNOWN
) -> str | None:
    """ "complaint" / "agent" while a person owns the member's conversation, else None.

    ``ticket`` is the member's live inbox ticket when the caller already looked it up (the
    agent-mode middleware does, once per message); the conversation-state markers cover
    handlers that hand on without a ticket (the stored JSON object is accepted too: the
    offers preview page reads it from the store).
    """
    if ticket is UNKNOWN:
        from community.inbox.service import live_ticket

        ticket = await live_ticket(member_id)
    if ticket is not None:
        return "complaint" if ticket.reason == "complaint" else "agent"
    if state is not None:
        if not isinstance(state, ConversationState):
            state = ConversationState.from_json(state)
        if state.complaint:
            return "complaint"
        if state.agent_ticket or state.ticket_id:
            return "agent"
    return None


async def load_history(
    member_id: int | None, now: datetime, rules: Rules, offers: Sequence[Offer] = ()
) -> OfferHistory:
    """The member's recent impressions, and today's impressions of the offers that have a
    daily budget: small aggregate queries, whatever the day's total traffic."""
    day = rules.day_start(now)
    history = OfferHistory()
    budgeted = [o.id for o in offers if o.daily_budget]
    if budgeted:
        rows = await (
            OfferEvent.filter(kind="impression", created_at__gte=day, offer_id__in=budgeted)
            .annotate(n=Count("id"))
            .group_by("offer_id")
            .values_list("offer_id", "n")
        )
        history.impressions_today = {oid: int(n) for oid, n in rows}
    if member_id is not None:
        days = max([o.repeat_days for o in offers] + [1])
        horizon = min(day, now - timedelta(days=days))
        mine = await OfferEvent.filter(kind="impression", member_id=member_id, created_at__gte=horizon).values_list(
            "offer_id", "created_at"
        )
        for offer_id, at in mine:
            if at >= day:
                history.member_offers_today += 1
            if offer_id not in history.last_shown or at > history.last_shown[offer_id]:
                history.last_shown[offer_id] = at
    return history


async def all_offers() -> list[Offer]:
    """Every offer, switched off ones too (the marketers' preview explains each)."""
    return await Offer.all().order_by("id")


async def evaluate_all(ctx: OfferContext, rules: Rules, offers: Sequence[Offer]) -> list[Verdict]:
    """A verdict per offer of ``offers`` (the catalog's switched-on ones on the answer path)."""
    if not offers:
        return []
    history = await load_history(ctx.member_id, ctx.now, rules, list(offers))
    return [evaluate(o, ctx, history, rules) for o in offers]


async def explain(ctx: OfferContext, rules: Rules) -> tuple[Verdict | None, list[Verdict]]:
    """For the preview: the offer this member would get for this answer, and every
    offer (switched-off ones too) with the reasons it would not be shown."""
    verdicts = await evaluate_all(ctx, rules, await all_offers())
    return choose(verdicts), sorted(verdicts, key=rank_key, reverse=True)


def tags_text(tags: Iterable[str]) -> str:
    joined = "|".join(t.replace("|", "/") for t in tags)
    return f"|{joined}|"[:500] if joined else ""


async def record_impression(verdict: Verdict, ctx: OfferContext, rules: Rules, token: str) -> OfferEvent | None:
    """Store the impression, then re-check the caps counting it: two answers racing for
    the last slot of a budget or a member's daily cap cannot both win."""
    event = await OfferEvent.create(
        offer_id=verdict.offer.id,
        kind="impression",
        token=token,
        member_id=ctx.member_id,
        channel=ctx.channel,
        item_id=ctx.item_id,
        category=ctx.category[:32],
        tags=list(ctx.tags),
        tags_text=tags_text(ctx.tags),
        query=ctx.question[:200],
    )
    day = rules.day_start(ctx.now)
    ahead = OfferEvent.filter(kind="impression", created_at__gte=day, id__lte=event.id)
    over = False
    if verdict.offer.daily_budget:
        over = await ahead.filter(offer_id=verdict.offer.id).count() > verdict.offer.daily_budget
    if not over and ctx.member_id is not None:
        over = await ahead.filter(member_id=ctx.member_id).count() > rules.max_per_member_per_day
    if over:
        await OfferEvent.filter(id=event.id).delete()
        return None
    return event
