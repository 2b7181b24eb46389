"""``/dashboard`` (any staff): KPIs per day/week and channel, the funnel, the tables,
interactive charts (ECharts, vendored under ``static/echarts``, served by the app), and a
CSV of every table at ``/dashboard.csv?table=…``."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web

from bot.core.app_keys import SERVICES
from bot.dashboard import prom
from bot.web.csvexport import csv_response
from bot.dashboard.kpis import Ratio, Report
from bot.dashboard.reports import build_report, offer_rows, parse_query
from bot.core.i18n import N_, get_translator
from bot.core.settings import Settings
from bot.staff.auth import require_role
from bot.staff.web import STAFF_LINKS
from bot.web import add_template_dir, render, request_locale

TEMPLATES = Path(__file__).parent / "templates"
STATIC = Path(__file__).parent / "static"
DAY_CHOICES = (7, 14, 30, 90)
LAYER_LABELS = {
    "self_service": N_("Self-service"),
    "peer": N_("Peer"),
    "bot_suggestion": N_("Bot suggestion"),
    "online_agent": N_("Online agent"),
    "hotline": N_("Hotline"),
}
KPI_LABELS = {
    "self_service": N_("Self-service share"),
    "accuracy": N_("Answer match accuracy"),
    "satisfaction": N_("Satisfaction"),
    "repeat": N_("Repeat-inquiry share"),
}
TABLES = ("by_period", "by_channel", "funnel", "unanswered", "sla", "points", "offers")


def pct(r: Ratio | float | None) -> str:
    value = r.value if isinstance(r, Ratio) else r
    return "—" if value is None else f"{value * 100:.1f}%"


def table(name: str, rep: Report, offers: Sequence[tuple[Any, ...]], tz: ZoneInfo) -> tuple[list[str], list[list[Any]]]:
    """One dashboard table as (header, rows): the page and the CSV share it."""
    if name in ("by_period", "by_channel"):
        rows = rep.by_period if name == "by_period" else rep.by_channel
        header = [
            "period" if name == "by_period" else "channel",
            "conversations",
            "self_service_share",
            "self_served",
            "accuracy",
            "answers_held",
            "confident_answers",
            "satisfaction",
            "satisfied",
            "surveys",
            "repeat_inquiry_share",
            "repeats",
            "hotline_tickets",
        ]
        return header, [
            [
                r.key,
                r.conversations,
                r.self_service.value,
                r.self_service.num,
                r.accuracy.value,
                r.accuracy.num,
                r.accuracy.den,
                r.satisfaction.value,
                r.satisfaction.num,
                r.satisfaction.den,
                r.repeat.value,
                r.repeat.num,
                r.repeat.den,
            ]
            for r in [*rows, rep.total]
        ]
    if name == "funnel":
        return ["layer", "conversations", "handon_rate"], [[s.layer, s.reached, s.handon_rate] for s in rep.funnel]
    if name == "unanswered":
        return ["question", "times", "last_asked", "channels"], [
            [u.text, u.count, u.last_at.astimezone(tz).strftime("%Y-%m-%d %H:%M"), " ".join(u.channels)]
            for u in rep.unanswered
        ]
    if name == "sla":
        return ["channel", "attainment", "met", "decided"], [
            [ch, r.value, r.num, r.den] for ch, r in [*rep.sla_by_channel.items(), ("all", rep.sla)]
        ]
    if name == "points":
        return ["issued", "redeemed"], [[rep.points_issued, rep.points_redeemed]]
    if name == "offers":
        return ["offer_id", "title", "impressions", "clicks", "accepts", "conversion"], [list(r) for r in offers]
    raise web.HTTPBadRequest(text=f"table: one of {', '.join(TABLES)}")


def chart_data(rep: Report, gettext: Callable[..., str]) -> dict[str, Any]:
    """What ``static/dashboard.js`` draws: plain JSON, rendered into the page as data."""
    return {
        "periods": [r.key for r in rep.by_period],
        "kpis": [
            {"key": key, "title": gettext(label), "values": [getattr(r, key).value for r in rep.by_period]}
            for key, label in KPI_LABELS.items()
        ],
        "funnel": {
            "title": gettext("Service funnel"),
            "steps": [
                {"layer": s.layer, "label": gettext(LAYER_LABELS[s.layer]), "reached": s.reached, "rate": s.handon_rate}
                for s in rep.funnel
            ],
        },
        "labels": {"no_data": gettext("no data"), "handed_on": gettext("went on to a later layer:")},
    }


def _now() -> datetime:
    return datetime.now(timezone.utc)


@require_role()
async def dashboard(request: web.Request) -> web.Response:
    settings = request.app[SERVICES].settings
    tz = ZoneInfo(settings.service_timezone)
    now = _now()
    q = parse_query(request.query, tz, now)
    rep, history = await build_report(settings, q, now)
    offers = await offer_rows(q)
    tr = get_translator()
    locale = request_locale(request)
    data = chart_data(rep, lambda m, **kw: tr.gettext(locale, m, **kw))
    return render(
        request,
        "dashboard.html",
        staff=request["staff"],
        csrf_token=request["csrf_token"],
        q=q,
        rep=rep,
        history=history,
        offers=offers,
        chart_data=data,
        pct=pct,
        layer_labels=LAYER_LABELS,
        kpi_labels=KPI_LABELS,
        day_choices=DAY_CHOICES,
        tz=tz,
        qs=f"period={q.period}&days={q.days}",
        gap_minutes=settings.kpi_conversation_gap_minutes,
        window_minutes=settings.kpi_answer_window_minutes,
    )


@require_role()
async def dashboard_csv(request: web.Request) -> web.Response:
    settings = request.app[SERVICES].settings
    tz = ZoneInfo(settings.service_timezone)
    now = _now()
    name = request.query.get("table", "")
    if name not in TABLES:
        raise web.HTTPBadRequest(text=f"table: one of {', '.join(TABLES)}")
    q = parse_query(request.query, tz, now)
    rep, _ = await build_report(settings, q, now)
    offers = await offer_rows(q) if name == "offers" else []
    header, rows = table(name, rep, offers, tz)
    return csv_response(f"dashboard-{name}-{q.period}-{q.days}d.csv", header, rows)


def setup(app: web.Application, settings: Settings) -> None:
    add_template_dir(TEMPLATES)
    app.router.add_get("/dashboard", dashboard)
    app.router.add_get("/dashboard.csv", dashboard_csv)
    app.router.add_static("/dashboard/static", STATIC)
    entry = ("/dashboard", N_("Service dashboard"), ())
    if entry not in STAFF_LINKS:
        STAFF_LINKS.append(entry)
    prom.setup(app, settings)
