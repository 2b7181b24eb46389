"""Gamification benchmark: ledger award throughput and leaderboard latency.

1. Ledger awards/s (the full path: idempotency check, balance row lock, cap policy with
   its counting queries, entry + balance update in one transaction) on SQLite and
   PostgreSQL, against a baseline of plain single-row inserts into the same table in the
   same run.
2. Leaderboard top-10 + own rank (+ neighbours) for N members (default 1,000,000):
   Redis sorted sets (one Lua call) vs the SQL implementation (window functions over
   the balance table) on PostgreSQL and SQLite. p50/p99 over random members.

Throw-away PostgreSQL / Redis servers are started on 127.0.0.1 (binaries from the Debian
packages) unless --postgres-url / --redis-url are given. Bounded: fixed counts, and a
time budget per SQL measurement.

    python bench/gamification.py                       # full run (~2-4 min on 2 cores)
    python bench/gamification.py --members 100000 --awards 500   # quick
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

# this file is named like the package: put the repo root first instead of bench/
sys.path[0] = str(Path(__file__).resolve().parent.parent)

from tortoise import connections  # noqa: E402

from bot.core import storage  # noqa: E402
from bot.core.models import Member  # noqa: E402
from gamification import caps, ledger  # noqa: E402
from gamification.leaderboard import RedisLeaderboard, SqlLeaderboard  # noqa: E402
from gamification.models import LedgerEntry  # noqa: E402
from gamification.rules import load_rules  # noqa: E402


def pct(values: list[float], p: float) -> float:
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


async def bench_ledger(url: str, awards: int, members: int) -> dict[str, object]:
    await storage.open_db(url, create_schema=True)
    rules = load_rules()
    try:
        ms = [await Member.create(display_name=f"b{i}") for i in range(members)]
        # baseline: plain inserts of ledger rows, no lock, no caps, no balance
        t0 = time.perf_counter()
        for i in range(awards):
            await LedgerEntry.create(
                member_id=ms[i % members].id, event="baseline", delta=1, granted=1, idempotency_key=f"base:{i}"
            )
        base = awards / (time.perf_counter() - t0)
        # the real path, sequential
        t0 = time.perf_counter()
        for i in range(awards):
            m = ms[i % members].id
            await ledger.award(
                m, "answer_helpful", 3, key=f"seq:{i}", policy=caps.policy_for(rules, m, "answer_helpful")
            )
        seq = awards / (time.perf_counter() - t0)
        # the real path, 50 concurrent tasks (PostgreSQL: real parallel transactions)
        sem = asyncio.Semaphore(50)

        async def one(i: int) -> None:
            async with sem:
                m = ms[i % members].id
                await ledger.award(
                    m,
                    "contribution_approved",
                    1,
                    key=f"par:{i}",
                    policy=caps.policy_for(rules, m, "contribution_approved_bench"),
                )

        t0 = time.perf_counter()
        await asyncio.gather(*[one(i) for i in range(awards)])
        par = awards / (time.perf_counter() - t0)
        # replays: every key again, nothing pays
        t0 = time.perf_counter()
        for i in range(awards):
            await ledger.award(ms[i % members].id, "answer_helpful", 3, key=f"seq:{i}")
        replay = awards / (time.perf_counter() - t0)
        return {
            "baseline_inserts_per_s": round(base),
            "awards_per_s": round(seq),
            "awards_per_s_50_concurrent": round(par),
            "replays_per_s": round(replay),
            "award_vs_insert": round(seq / base, 3),
        }
    finally:
        await storage.close_db()


async def fill_sql(url: str, n: int, rnd: random.Random) -> None:
    """n members with a balance row each (bulk, outside the ORM for speed)."""
    await storage.open_db(url, create_schema=True)
    conn = connections.get("default")
    now = datetime.now(timezone.utc)
    rows_m, rows_b = [], []
    for i in range(1, n + 1):
        staff = i % 5000 == 0
        rows_m.append((i, f"m{i}", "zh_CN", "active", staff))
        rows_b.append((i, rnd.randint(1, 20000), now - timedelta(seconds=rnd.randint(0, 10**7))))
    if conn.capabilities.dialect == "postgres":
        async with conn.acquire_connection() as raw:
            await raw.copy_records_to_table(
                "member",
                records=[(i, nm, loc, st, sf, False, False, "[]", now) for i, nm, loc, st, sf in rows_m],
                columns=[
                    "id",
                    "display_name",
                    "locale",
                    "status",
                    "is_staff",
                    "locale_explicit",
                    "opted_out",
                    "tags",
                    "created_at",
                ],
            )
            await raw.copy_records_to_table(
                "gam_balance",
                records=[(i, p, 0, p, 0, t, now) for i, p, t in rows_b],
                columns=["member_id", "balance", "debt", "lifetime", "held", "last_earned_at", "updated_at"],
            )
            await raw.execute(
                "CREATE INDEX IF NOT EXISTS bench_lifetime ON gam_balance (lifetime DESC, last_earned_at)"
            )
            await raw.execute("ANALYZE")
    else:
        async with conn.acquire_connection() as raw:
            await raw.execute("BEGIN")
            await raw.executemany(
                "INSERT INTO member (id, display_name, locale, status, is_staff, locale_explicit, opted_out, tags, created_at)"
                " VALUES (?, ?, ?, ?, ?, 0, 0, '[]', ?)",
                [(*r, now.isoformat(" ")) for r in rows_m],
            )
            await raw.executemany(
                "INSERT INTO gam_balance (member_id, balance, debt, lifetime, held, last_earned_at, updated_at)"
                " VALUES (?, ?, 0, ?, 0, ?, ?)",
                [(i, p, p, t.isoformat(" "), now.isoformat(" ")) for i, p, t in rows_b],
            )
            await raw.commit()
            await raw.execute(
                "CREATE INDEX IF NOT EXISTS bench_lifetime ON gam_balance (lifetime DESC, last_earned_at)"
            )


async def bench_sql_board(url: str, n: int, queries: int, budget: float) -> dict[str, object]:
    rnd = random.Random(1)
    t0 = time.perf_counter()
    await fill_sql(url, n, rnd)
    load = time.perf_counter() - t0
    board = SqlLeaderboard()
    lat: list[float] = []
    deadline = time.perf_counter() + budget
    try:
        for _ in range(queries):
            me = rnd.randint(1, n)
            q0 = time.perf_counter()
            st = await board.standing("all", me)
            lat.append((time.perf_counter() - q0) * 1000)
            assert len(st.top) == 10
            if time.perf_counter() > deadline:
                break
    finally:
        await storage.close_db()
    return {
        "members": n,
        "load_s": round(load, 1),
        "queries": len(lat),
        "p50_ms": round(pct(lat, 50), 2),
        "p99_ms": round(pct(lat, 99), 2),
    }


async def server_latency(redis: object, command: str) -> dict[str, float]:
    """Redis' own per-command latency (LATENCY HISTOGRAM, Redis 7): the script's time on the
    server, free of client-side scheduling noise on a busy machine."""
    try:
        raw = await redis.execute_command("LATENCY", "HISTOGRAM", command)  # type: ignore[attr-defined]
    except Exception:
        return {}
    # RESP2: [name, [b"calls", n, b"histogram_usec", [bucket, cumulative, ...]]]
    body = raw[1] if isinstance(raw, list) else raw.get(command.encode(), raw.get(command))
    if isinstance(body, dict):
        calls, hist = body[b"calls"], body[b"histogram_usec"]
        pairs = sorted(hist.items())
    else:
        fields = dict(zip(body[::2], body[1::2]))
        calls, hist = fields[b"calls"], fields[b"histogram_usec"]
        pairs = list(zip(hist[::2], hist[1::2]))
    out: dict[str, float] = {}
    for p in (50, 99):
        need = calls * p / 100
        out[f"server_p{p}_ms_le"] = next(int(b) / 1000 for b, c in pairs if c >= need)
    return out


async def bench_redis_board(url: str, n: int, queries: int) -> dict[str, object]:
    from redis.asyncio import Redis

    redis = Redis.from_url(url)
    await redis.flushdb()
    board = RedisLeaderboard(redis, prefix="bench")
    rnd = random.Random(1)
    now = datetime.now(timezone.utc)
    t0 = time.perf_counter()
    rows = [(i, rnd.randint(1, 20000), now - timedelta(seconds=rnd.randint(0, 10**7))) for i in range(1, n + 1)]
    await board.load("all", rows, now)
    load = time.perf_counter() - t0
    lat: list[float] = []
    for _ in range(100):  # warm-up
        await board.standing("all", rnd.randint(1, n))
    await redis.config_resetstat()
    for _ in range(queries):
        me = rnd.randint(1, n)
        q0 = time.perf_counter()
        st = await board.standing("all", me)
        lat.append((time.perf_counter() - q0) * 1000)
        assert len(st.top) == 10 and st.me is not None
    server = await server_latency(redis, "evalsha")
    # and the write path: one grant updates all three period boards atomically
    w0 = time.perf_counter()
    for i in range(2000):
        await board.record(rnd.randint(1, n), 5, now)
    writes = 2000 / (time.perf_counter() - w0)
    # baseline in the same run: a bare PING round trip
    p: list[float] = []
    for _ in range(queries):
        q0 = time.perf_counter()
        await redis.ping()
        p.append((time.perf_counter() - q0) * 1000)
    await redis.flushdb()
    await redis.aclose()
    return {
        "members": n,
        "load_s": round(load, 1),
        "queries": len(lat),
        "p50_ms": round(pct(lat, 50), 3),
        "p99_ms": round(pct(lat, 99), 3),
        **server,
        "ping_p50_ms": round(pct(p, 50), 3),
        "ping_p99_ms": round(pct(p, 99), 3),
        "record_per_s": round(writes),
    }


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--members", type=int, default=1_000_000)
    ap.add_argument("--sqlite-members", type=int, default=200_000)
    ap.add_argument("--awards", type=int, default=2000)
    ap.add_argument("--queries", type=int, default=5000)
    ap.add_argument("--sql-queries", type=int, default=30)
    ap.add_argument("--sql-budget", type=float, default=60.0, help="seconds per SQL latency run")
    ap.add_argument("--postgres-url", default=os.environ.get("BOT_TEST_POSTGRES_URL", ""))
    ap.add_argument("--redis-url", default=os.environ.get("BOT_TEST_REDIS_URL", ""))
    ap.add_argument("--only", choices=["ledger", "redis", "sql"], default=None)
    args = ap.parse_args()
    from tests.fixtures_services import PostgresCluster, RedisServer, create_database, postgres_bindir

    started: list[object] = []
    if not args.redis_url:
        rs = RedisServer()
        rs.start()
        started.append(rs)
        args.redis_url = rs.url + "/0"
    if not args.postgres_url and postgres_bindir():
        pg = PostgresCluster(postgres_bindir())  # type: ignore[arg-type]
        pg.init()
        pg.start()
        started.append(pg)
        args.postgres_url = pg.url
    results: dict[str, object] = {}
    try:
        with tempfile.TemporaryDirectory() as tmp:
            if args.only in (None, "ledger"):
                results["ledger_sqlite"] = await bench_ledger(f"sqlite://{tmp}/l.sqlite3", args.awards, 100)
                print(json.dumps({"ledger_sqlite": results["ledger_sqlite"]}), flush=True)
            if args.postgres_url and args.only in (None, "ledger"):
                results["ledger_postgres"] = await bench_ledger(
                    await create_database(args.postgres_url), args.awards, 100
                )
                print(json.dumps({"ledger_postgres": results["ledger_postgres"]}), flush=True)
            if args.only in (None, "redis"):
                results["board_redis"] = await bench_redis_board(args.redis_url, args.members, args.queries)
                print(json.dumps({"board_redis": results["board_redis"]}), flush=True)
            if args.only not in (None, "sql"):
                pass
            elif args.postgres_url:
                results["board_postgres"] = await bench_sql_board(
                    await create_database(args.postgres_url), args.members, args.sql_queries, args.sql_budget
                )
                print(json.dumps({"board_postgres": results["board_postgres"]}), flush=True)
            n_sqlite = min(args.sqlite_members, args.members)
            if args.only in (None, "sql"):
                results["board_sqlite"] = await bench_sql_board(
                    f"sqlite://{tmp}/b.sqlite3", n_sqlite, args.sql_queries, args.sql_budget
                )
                print(json.dumps({"board_sqlite": results["board_sqlite"]}), flush=True)
    finally:
        for s in started:
            s.cleanup()  # type: ignore[attr-defined]
    print(json.dumps(results, indent=2))


if __name__ == "__main__":
    asyncio.run(main())
