"""Marketers' pages for offers, and the public tracked redirect ``/o/<token>``.

``/admin/offers``: list with conversion, create/edit, records search + CSV, and a
preview ("which offer would this member get for this question, and why not the others").
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from pydantic import BaseModel, Field, ValidationError, field_validator

from bot.core.app_keys import SERVICES
from bot.web.csvexport import csv_response
from bot.web.urls import safe_external_url
from bot.core.i18n import LOCALES, N_, get_translator
from bot.core.models import ChannelAccount, Member
from bot.core.settings import Settings
from bot.staff.auth import require_role
from bot.web import add_staff_link, add_template_dir, render, request_locale
from bot.web.lookup import object_or_404
from community.offers.catalog import OFFER_CATALOG
from community.offers.engine import explain
from community.offers.models import Offer, OfferEvent
from community.offers.render import check_template, member_fields, render_body
from community.offers.service import build_context, follow, rules_for
from community.offers.stats import Conversion, conversion_by_offer

TEMPLATES = Path(__file__).parent / "templates"
CHANNELS = ("wechat", "telegram", "sms", "web")
MARKETING = ("marketer",)  # admin passes every role check
RECORDS_PAGE = 200
CSV_MAX_ROWS = 100_000


# --- the offer form -----------------------------------------------------------------------


def _split(raw: str) -> list[str]:
    parts = raw.replace("，", ",").replace("\n", ",").split(",")
    return [p.strip() for p in parts if p.strip()]


def safe_url(url: str) -> bool:
    """Only absolute http(s) links with a host: the redirect target is never a script (bot/web/urls.py)."""
    return safe_external_url(url)


class OfferForm(BaseModel):
    title: str = Field(min_length=1, max_length=120)
    body: str = Field(default="", max_length=2000)
    url: str = Field(default="", max_length=500)
    action_label: str = Field(default="", max_length=64)
    trigger_items: list[int] = Field(default_factory=list, max_length=200)
    trigger_categories: list[str] = Field(default_factory=list, max_length=50)
    trigger_keywords: list[str] = Field(default_factory=list, max_length=100)
    trigger_tags: list[str] = Field(default_factory=list, max_length=50)
    channels: list[str] = Field(default_factory=list)
    locales: list[str] = Field(default_factory=list)
    starts_at: datetime | None = None
    ends_at: datetime | None = None
    daily_budget: int = Field(default=0, ge=0, le=10_000_000)
    repeat_days: int = Field(default=7, ge=0, le=365)
    priority: int = Field(default=0, ge=-1000, le=1000)
    active: bool = False

    @field_validator("url")
    @classmethod
    def _url(cls, v: str) -> str:
        v = v.strip()
        if v and not safe_url(v):
            raise ValueError("must be an http:// or https:// link")
        return v

    @field_validator("body")
    @classmethod
    def _body(cls, v: str) -> str:
        problem = check_template(v)
        if problem:
            raise ValueError(f"template error: {problem}")
        return v

    @field_validator("channels")
    @classmethod
    def _channels(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if c not in CHANNELS]
        if bad:
            raise ValueError(f"unknown channel(s): {', '.join(bad)}")
        return v

    @field_validator("locales")
    @classmethod
    def _locales(cls, v: list[str]) -> list[str]:
        bad = [c for c in v if c not in LOCALES]
        if bad:
            raise ValueError(f"unknown locale(s): {', '.join(bad)}")
        return v

    @field_validator("trigger_categories", "trigger_keywords", "trigger_tags")
    @classmethod
    def _short(cls, v: list[str]) -> list[str]:
        if any(len(x) > 64 for x in v):
            raise ValueError("each entry at most 64 characters")
        return v


def _parse_local(raw: str, tz: ZoneInfo) -> datetime | None:
    raw = raw.strip()
    if not raw:
        return None
    return datetime.fromisoformat(raw).replace(tzinfo=tz).astimezone(timezone.utc)


def form_values(form: Any, tz: ZoneInfo) -> dict[str, Any]:
    """Raw form fields -> OfferForm input; a ValueError names the bad field."""
    values: dict[str, Any] = {k: str(form.get(k, "")) for k in ("title", "body", "url", "action_label")}
    values["title"] = values["title"].strip()
    values["action_label"] = values["action_label"].strip()
    for key in ("trigger_categories", "trigger_keywords", "trigger_tags"):
        values[key] = _split(str(form.get(key, "")))
    items = _split(str(form.get("trigger_items", "")))
    if any(not i.isdigit() for i in items):
        raise ValueError("trigger_items: knowledge item ids are numbers")
    values["trigger_items"] = [int(i) for i in items]
    values["channels"] = [str(c) for c in form.getall("channels", [])]
    values["locales"] = [str(c) for c in form.getall("locales", [])]
    for key in ("starts_at", "ends_at"):
        try:
            values[key] = _parse_local(str(form.get(key, "")), tz)
        except ValueError as exc:
            raise ValueError(f"{key}: use a date and time such as 2026-12-01T08:00") from exc
    for key in ("daily_budget", "repeat_days", "priority"):
        raw = str(form.get(key, "")).strip()
        values[key] = raw or "0"
    values["active"] = form.get("active") in ("on", "1", "true")
    return values


def _local_input(value: datetime | None, tz: ZoneInfo) -> str:
    return value.astimezone(tz).strftime("%Y-%m-%dT%H:%M") if value else ""


def offer_form_data(offer: Offer | None, tz: ZoneInfo) -> dict[str, Any]:
    if offer is None:
        return {
            "title": "",
            "body": "",
            "url": "",
            "action_label": "",
            "trigger_items": "",
            "trigger_categories": "",
            "trigger_keywords": "",
            "trigger_tags": "",
            "channels": [],
            "locales": [],
            "starts_at": "",
            "ends_at": "",
            "daily_budget": 0,
            "repeat_days": 7,
            "priority": 0,
            "active": True,
        }
    return {
        "title": offer.title,
        "body": offer.body,
        "url": offer.url,
        "action_label": offer.action_label,
        "trigger_items": ", ".join(str(i) for i in offer.trigger_items),
        "trigger_categories": ", ".join(offer.trigger_categories),
        "trigger_keywords": ", ".join(offer.trigger_keywords),
        "trigger_tags": ", ".join(offer.trigger_tags),
        "channels": offer.channels,
        "locales": offer.locales,
        "starts_at": _local_input(offer.starts_at, tz),
        "ends_at": _local_input(offer.ends_at, tz),
        "daily_budget": offer.daily_budget,
        "repeat_days": offer.repeat_days,
        "priority": offer.priority,
        "active": offer.active,
    }


def _tz(request: web.Request) -> ZoneInfo:
    return ZoneInfo(request.app[SERVICES].settings.service_timezone)


def _page(request: web.Request, template: str, status: int = 200, **ctx: Any) -> web.Response:
    return render(
        request,
        template,
        status=status,
        staff=request["staff"],
        csrf_token=request["csrf_token"],
        channels=CHANNELS,
        all_locales=LOCALES,
        **ctx,
    )


CONVERSION_HEADER = ("offer_id", "title", "active", "impressions", "clicks", "accepts", "click_rate", "conversion")


# --- handlers ------------------------------------------------------------------------------------


@require_role(*MARKETING)
async def offer_list(request: web.Request) -> web.StreamResponse:
    offers = await Offer.all().order_by("-active", "-priority", "id")
    conv = await conversion_by_offer()
    rows = [(o, conv.get(o.id, Conversion(o.id))) for o in offers]
    if request.query.get("format") == "csv":
        return csv_response(
            "offer-conversion.csv",
            CONVERSION_HEADER,
            [
                (o.id, o.title, o.active, c.impressions, c.clicks, c.accepts, c.click_rate, c.conversion)
                for o, c in rows
            ],
        )
    settings = request.app[SERVICES].settings
    rules = rules_for(settings)
    return _page(
        request,
        "offers_list.html",
        rows=rows,
        saved=request.query.get("saved"),
        rules=rules,
        quiet_now=rules.in_quiet_hours(datetime.now(timezone.utc)),
        tz_name=settings.service_timezone,
    )


@require_role(*MARKETING)
async def offer_new(request: web.Request) -> web.Response:
    return _page(request, "offer_form.html", offer=None, data=offer_form_data(None, _tz(request)), errors=[])


async def _load(request: web.Request) -> Offer:
    return await object_or_404(Offer, request, "offer_id", "offer")


@require_role(*MARKETING)
async def offer_edit(request: web.Request) -> web.Response:
    offer = await _load(request)
    return _page(request, "offer_form.html", offer=offer, data=offer_form_data(offer, _tz(request)), errors=[])


@require_role(*MARKETING)
async def offer_save(request: web.Request) -> web.Response:
    """Create (no id) or update an offer; invalid input re-shows the form with 400."""
    offer = await _load(request) if "offer_id" in request.match_info else None
    form = await request.post()
    tz = _tz(request)
    errors: list[str] = []
    parsed: OfferForm | None = None
    try:
        parsed = OfferForm.model_validate(form_values(form, tz))
    except ValidationError as exc:
        errors = [f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()]
    except ValueError as exc:
        errors = [str(exc)]
    if parsed and parsed.starts_at and parsed.ends_at and parsed.ends_at <= parsed.starts_at:
        errors.append("ends_at: must be after starts_at")
    if parsed and not parsed.url and not parsed.action_label:
        errors.append("url / action_label: give a link, an action, or both")
    if errors or parsed is None:
        data: dict[str, Any]  # the form as typed, lists and flags added below
        data = {
            k: str(form.get(k, ""))
            for k in (
                "title",
                "body",
                "url",
                "action_label",
                "trigger_items",
                "trigger_categories",
                "trigger_keywords",
                "trigger_tags",
                "starts_at",
                "ends_at",
                "daily_budget",
                "repeat_days",
                "priority",
            )
        }
        data.update(
            channels=form.getall("channels", []), locales=form.getall("locales", []), active=form.get("active") == "on"
        )
        return _page(request, "offer_form.html", status=400, offer=offer, data=data, errors=errors)
    values = parsed.model_dump()
    if offer is None:
        offer = await Offer.create(**values, created_by=request["staff"].username)
    else:
        await Offer.filter(id=offer.id).update(**values)
    await request.app[OFFER_CATALOG].changed()  # every worker's next answer sees it
    raise web.HTTPFound(f"/admin/offers?saved={offer.id}")


@dataclass(slots=True)
class RecordFilter:
    since: datetime | None
    until: datetime | None
    offer_id: int | None
    channel: str
    item_id: int | None
    tag: str
    kind: str


def parse_filter(query: Any, tz: ZoneInfo) -> RecordFilter:
    """Query-string filters; a malformed one raises HTTPBadRequest with the field name."""

    def day(name: str) -> date | None:
        raw = query.get(name, "").strip()
        if not raw:
            return None
        try:
            return date.fromisoformat(raw)
        except ValueError:
            raise web.HTTPBadRequest(text=f"{name}: use a date such as 2026-11-01") from None

    def num(name: str) -> int | None:
        raw = query.get(name, "").strip()
        if not raw:
            return None
        if not raw.isdigit() or len(raw) > 9:
            raise web.HTTPBadRequest(text=f"{name}: must be a number")
        return int(raw)

    start, end = day("from"), day("to")
    kind = query.get("kind", "")
    if kind and kind not in ("impression", "click", "accept"):
        raise web.HTTPBadRequest(text="kind: impression, click or accept")
    return RecordFilter(
        since=datetime.combine(start, time(), tz).astimezone(timezone.utc) if start else None,
        until=datetime.combine(end + timedelta(days=1), time(), tz).astimezone(timezone.utc) if end else None,
        offer_id=num("offer"),
        channel=query.get("channel", "")[:16],
        item_id=num("item"),
        tag=query.get("tag", "").strip()[:64],
        kind=kind,
    )


def filtered_events(f: RecordFilter):  # type: ignore[no-untyped-def]
    q = OfferEvent.all()
    if f.since:
        q = q.filter(created_at__gte=f.since)
    if f.until:
        q = q.filter(created_at__lt=f.until)
    if f.offer_id is not None:
        q = q.filter(offer_id=f.offer_id)
    if f.channel:
        q = q.filter(channel=f.channel)
    if f.item_id is not None:
        q = q.filter(item_id=f.item_id)
    if f.tag:
        q = q.filter(tags_text__contains=f"|{f.tag.replace('|', '/')}|")
    if f.kind:
        q = q.filter(kind=f.kind)
    return q


RECORD_HEADER = ("time", "kind", "offer_id", "offer", "member_id", "channel", "item_id", "category", "tags", "question")


@require_role(*MARKETING)
async def records(request: web.Request) -> web.StreamResponse:
    tz = _tz(request)
    f = parse_filter(request.query, tz)
    q = filtered_events(f).select_related("offer").order_by("-id")
    as_csv = request.query.get("format") == "csv"
    events = await q.limit(CSV_MAX_ROWS if as_csv else RECORDS_PAGE)
    rows = [
        (
            e.created_at.astimezone(tz).strftime("%Y-%m-%d %H:%M:%S"),
            e.kind,
            e.offer_id,
            e.offer.title,
            e.member_id,
            e.channel,
            e.item_id,
            e.category,
            " ".join(e.tags or []),
            e.query,
        )
        for e in events
    ]
    if as_csv:
        return csv_response("offer-records.csv", RECORD_HEADER, rows)
    conv = await conversion_by_offer(f.since, f.until)
    offers = await Offer.all().order_by("id")
    return _page(
        request,
        "offer_records.html",
        rows=rows,
        query=request.query,
        offers=offers,
        conv=[(o, conv[o.id]) for o in offers if o.id in conv],
        limit=RECORDS_PAGE,
        qs=request.query_string,
    )


async def _find_member(raw: str) -> Member | None:
    raw = raw.strip()
    if raw.isdigit() and len(raw) < 10:
        return await Member.get_or_none(id=int(raw))
    channel, sep, external = raw.partition(":")
    if sep:
        account = await ChannelAccount.get_or_none(channel=channel, external_id=external).select_related("member")
        return account.member if account else None
    return None


@require_role(*MARKETING)
async def preview(request: web.Request) -> web.Response:
    """Which offer this member would get for this question now, and why not the others."""
    services = request.app[SERVICES]
    q = request.query
    who, question = q.get("member", "")[:160], q.get("q", "")[:500]
    channel = q.get("channel", "web") if q.get("channel") in CHANNELS else "web"
    result: dict[str, Any] | None = None
    error = ""
    if who or question:
        member = await _find_member(who)
        if member is None:
            error = "member"
        else:
            locale = q["locale"] if q.get("locale") in LOCALES else member.locale
            decision = await services.kb.adecide(question, locale) if question else None
            item = None
            if decision and decision.kind == "answer" and decision.matches:
                item = await services.kb.get(decision.matches[0].item_id)
            state = await services.state.get(f"member:{member.id}")
            octx = await build_context(
                member,
                channel=channel,
                locale=locale,
                question=question,
                item_id=item.id if item else None,
                category=item.category if item else "",
                state=state,
            )
            best, verdicts = await explain(octx, rules_for(services.settings))
            if item is None:  # offers only follow a confident answer
                best = None
            body = (
                render_body(
                    best.offer,
                    member_fields(
                        name=member.display_name, locale=locale, channel=channel, tags=list(member.tags or [])
                    ),
                )
                if best
                else ""
            )
            tr = get_translator()
            page_locale = request_locale(request)
            result = {
                "member": member,
                "item": item,
                "best": best,
                "body": body,
                "locale": locale,
                "verdicts": [
                    (v, [r.text(lambda m, **kw: tr.gettext(page_locale, m, **kw)) for r in v.reasons]) for v in verdicts
                ],
            }
    return _page(request, "offer_preview.html", q=q, result=result, error=error, sel_channel=channel)


async def tracked_redirect(request: web.Request) -> web.Response:
    """Public: record the click, then go to the offer's own configured link — never to a
    URL taken from the request."""
    token = request.match_info["token"]
    followed = await follow(token, "click") if 8 <= len(token) <= 32 else None
    if followed is None or not safe_url(followed.offer.url):
        raise web.HTTPNotFound(text="This link has expired.")
    raise web.HTTPFound(followed.offer.url, headers={"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"})


def setup(app: web.Application, settings: Settings) -> None:
    rules_for(settings)  # a malformed BOT_OFFERS_QUIET_HOURS fails at start, not per message
    add_template_dir(app, TEMPLATES)
    app.router.add_get("/admin/offers", offer_list)
    app.router.add_get("/admin/offers/new", offer_new)
    app.router.add_post("/admin/offers/new", offer_save)
    app.router.add_get("/admin/offers/records", records)
    app.router.add_get("/admin/offers/preview", preview)
    app.router.add_get(r"/admin/offers/{offer_id:\d+}", offer_edit)
    app.router.add_post(r"/admin/offers/{offer_id:\d+}", offer_save)
    app.router.add_get("/o/{token}", tracked_redirect)
    add_staff_link(app, "/admin/offers", N_("Offers"), MARKETING)
    app.cleanup_ctx.append(_follow_changes)


async def _follow_changes(app: web.Application) -> AsyncIterator[None]:
    """Saves on other workers reach this worker's catalog (the fan-out is ops_web's, set up before)."""
    task = asyncio.create_task(app[OFFER_CATALOG].follow(app[SERVICES].fanout))
    yield
    task.cancel()
    await asyncio.gather(task, return_exceptions=True)
