"""The dashboard's report for a date range: the page, its CSVs and /metrics read the same one."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, time, timedelta, timezone
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.core.settings import Settings
from bot.dashboard.data import load_history
from bot.dashboard.kpis import Period, Report, report
from community.offers.models import Offer
from community.offers.stats import conversion_by_offer

MAX_DAYS = 92


@dataclass(frozen=True, slots=True)
class Query:
    period: Period
    days: int
    start: datetime
    end: datetime


def parse_query(query: Any, tz: ZoneInfo, now: datetime) -> Query:
    """period=day|week, days=1..92, ending with today (local); bad values are a 400."""
    period = query.get("period", "day")
    if period not in ("day", "week"):
        raise web.HTTPBadRequest(text="period: day or week")
    raw = query.get("days", "14")
    if not raw.isdigit() or not 1 <= int(raw) <= MAX_DAYS:
        raise web.HTTPBadRequest(text=f"days: a number from 1 to {MAX_DAYS}")
    days = int(raw)
    today = now.astimezone(tz).date()
    end = datetime.combine(today + timedelta(days=1), time(), tz).astimezone(timezone.utc)
    start = datetime.combine(today - timedelta(days=days - 1), time(), tz).astimezone(timezone.utc)
    return Query(period=period, days=days, start=start, end=end)


async def build_report(settings: Settings, q: Query, now: datetime) -> tuple[Report, Any]:
    window = timedelta(minutes=settings.kpi_answer_window_minutes)
    gap = timedelta(minutes=settings.kpi_conversation_gap_minutes)
    history = await load_history(q.start, q.end, window=window, gap=gap)
    rep = report(
        history,
        start=q.start,
        end=q.end,
        period=q.period,
        tz=ZoneInfo(settings.service_timezone),
        window=window,
        gap=gap,
        now=now,
    )
    return rep, history


async def offer_rows(q: Query) -> list[tuple[int, str, int, int, int, float | None]]:
    conv = await conversion_by_offer(q.start, q.end)
    titles = dict(await Offer.filter(id__in=list(conv)).values_list("id", "title")) if conv else {}
    return [
        (oid, titles.get(oid, ""), c.impressions, c.clicks, c.accepts, c.conversion) for oid, c in sorted(conv.items())
    ]
