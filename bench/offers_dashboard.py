"""Cost of offers on the answer path, and of the dashboard's KPIs, against baselines.

1. Offers: the same answered questions through the pipeline with offers switched off
   (baseline) and on with N active offers; each question from a new member, so every
   answer runs the full eligibility check and records an impression.
2. Dashboard: computing the report from a synthetic history (what a /metrics scrape
   would cost if it computed) vs serving the periodically refreshed snapshot.

    python bench/offers_dashboard.py [--messages 300] [--offers 20] [--events 200000]
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from zoneinfo import ZoneInfo

# bench/ holds gamification.py: put the repo root first so packages win over scripts
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from bot.core.settings import Settings  # noqa: E402

QUESTIONS = ["我的流量还剩多少，怎么查？", "流量不够用了怎么加购流量包？", "how do I check my data balance", "查流量"]


async def offers_bench(messages: int, n_offers: int) -> dict[str, float]:
    from aiohttp.test_utils import TestServer

    from bot.app import create_app
    from bot.core.app_keys import SERVICES
    from bot.cli import import_kb
    from bot.core.messages import Incoming
    from community.offers.models import Offer

    tmp = Path(tempfile.mkdtemp())
    settings = Settings(
        _env_file=None,
        database_url=f"sqlite://{tmp / 'bench.sqlite3'}",
        offers_quiet_hours="",
        outbox_enabled=False,
        jieba_cache_dir=tempfile.gettempdir(),
    )  # type: ignore[call-arg]
    app = create_app(settings, db_setup="schema")
    server = TestServer(app)
    await server.start_server()
    try:
        await import_kb(Path("community/data/sample_kb.yaml"), quiet=True)
        services = app[SERVICES]
        await services.kb.load()
        rnd = random.Random(7)
        for i in range(n_offers):
            await Offer.create(
                title=f"offer {i}",
                body="{{ member.name }} 您好",
                url="https://shop.example/x",
                trigger_categories=[rnd.choice(["data", "billing", "broadband", "plan"])],
                trigger_keywords=["流量"] if i % 3 == 0 else [],
                priority=rnd.randint(0, 5),
            )

        async def one(label: str, i: int, enabled: bool) -> float:
            settings.offers_enabled = enabled
            inc = Incoming(channel="web", user=f"{label}-{i}", text=QUESTIONS[i % len(QUESTIONS)], msg_id=f"{label}{i}")
            t = time.perf_counter()
            replies = await services.pipeline.process(inc)
            assert replies
            return time.perf_counter() - t

        for i in range(20):  # warm-up: caches, jieba, SQLite pages
            await one("warm", i, i % 2 == 0)
        # interleaved, so load on the machine hits both sides alike
        base, on = [], []
        for i in range(messages):
            base.append(await one("off", i, False))
            on.append(await one("on", i, True))
        from community.offers.models import OfferEvent

        impressions = await OfferEvent.filter(kind="impression").count()
    finally:
        await server.close()
    return {
        "messages": messages,
        "offers": n_offers,
        "impressions": impressions,
        "baseline_p50_ms": statistics.median(base) * 1e3,
        "offers_p50_ms": statistics.median(on) * 1e3,
        "baseline_mean_ms": statistics.fmean(base) * 1e3,
        "offers_mean_ms": statistics.fmean(on) * 1e3,
        "overhead_ratio_p50": statistics.median(on) / statistics.median(base),
    }


def dashboard_bench(n_events: int) -> dict[str, float]:
    from bot.dashboard import kpis, prom
    from bot.dashboard.kpis import Event, History

    rnd = random.Random(11)
    start = datetime(2026, 11, 1, tzinfo=timezone.utc)
    events = []
    kinds = ["answer"] * 6 + ["suggest", "none", "answer_pick", "handover", "help_request", "agent"]
    i = 0
    while len(events) < n_events:
        member = rnd.randint(1, n_events // 8)
        at = start + timedelta(seconds=rnd.randint(0, 7 * 86400))
        i += 1
        events.append(
            Event(
                i,
                member,
                rnd.choice(["web", "sms", "wechat", "telegram"]),
                "in",
                at,
                action=rnd.choice(["", "", "", "fb:down:1", "human"]),
            )
        )
        i += 1
        events.append(Event(i, member, "web", "out", at + timedelta(seconds=1), kind=rnd.choice(kinds), item_id=1))
    history = History(events=events)
    t = time.perf_counter()
    rep = kpis.report(
        history,
        start=start,
        end=start + timedelta(days=7),
        period="day",
        tz=ZoneInfo("Asia/Shanghai"),
        window=timedelta(minutes=10),
        gap=timedelta(minutes=30),
        now=start + timedelta(days=7),
    )
    compute = time.perf_counter() - t
    prom.COLLECTOR.snapshot = prom.Snapshot(
        at=time.time(), kpis={"self_service": {"all": rep.total.self_service.value or 0}}
    )
    t = time.perf_counter()
    for _ in range(100):
        list(prom.COLLECTOR.collect())
    serve = (time.perf_counter() - t) / 100
    return {
        "events": len(events),
        "report_s": compute,
        "snapshot_collect_ms": serve * 1e3,
        "compute_vs_snapshot_ratio": compute / serve,
    }


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--messages", type=int, default=300)
    ap.add_argument("--offers", type=int, default=20)
    ap.add_argument("--events", type=int, default=200_000)
    args = ap.parse_args()
    print(json.dumps({"offers": asyncio.run(offers_bench(args.messages, args.offers))}, indent=1))
    print(json.dumps({"dashboard": dashboard_bench(args.events)}, indent=1))


if __name__ == "__main__":
    main()
