"""Fault runs at volume: a burst on every channel, the service killed -9 several times.

    python bench/faults.py [--per-channel 250] [--kills 4] [--only single|workers]

Runs tests/fault_harness.py twice: one process on SQLite (killed and restarted, as
systemd would), and ``--workers 2`` on PostgreSQL + Redis (a random child killed: a web
worker or the queue worker; the supervisor restarts it; then a Redis restart and a
PostgreSQL restart). Prints, per channel, messages
lost, processed twice and delivered twice (counted at the provider fakes, which drop no
duplicate themselves). Results: bench/RESULTS.md.
"""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from tests import fault_harness as fh  # noqa: E402
from tests.fixtures_services import PostgresCluster, RedisServer, create_database, postgres_bindir  # noqa: E402


async def one(name: str, tmp: Path, msgs: list[fh.Msg], kills: int, **kw: object) -> None:
    t0 = time.monotonic()
    kw.setdefault("faults", [fh.kill9] * kills)
    reports, service = await fh.run(tmp, msgs, kills=kills, concurrency=16, seed=11, **kw)  # type: ignore[arg-type]
    print(
        f"\n{name}: {len(msgs)} messages, faults: {', '.join(service.faults)}; "
        f"until healthy again {[round(d, 1) for d in service.downtimes]} s, {time.monotonic() - t0:.0f} s in all"
    )
    for r in reports:
        print("  " + r.line())
        for e in r.examples:
            print("      " + e)
    total = sum(r.messages for r in reports)
    dup = sum(r.delivered_twice for r in reports)
    print(f"  outbound duplicates: {dup} of {total} ({100 * dup / total:.2f} %)")


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--per-channel", type=int, default=250)
    ap.add_argument("--kills", type=int, default=4)
    ap.add_argument("--only", choices=("single", "workers"))
    args = ap.parse_args()
    msgs = fh.build_burst(args.per_channel, seed=11)
    if args.only != "workers":
        tmp = Path(tempfile.mkdtemp(prefix="everycsr-faults-"))
        await one("1 process, SQLite", tmp, msgs, args.kills, db_url=f"sqlite://{tmp / 'faults.sqlite3'}")
    if args.only != "single":
        tmp = Path(tempfile.mkdtemp(prefix="everycsr-faults-"))
        redis, pg = RedisServer(), PostgresCluster(postgres_bindir() or Path("/nonexistent"))
        redis.start()
        pg.init()
        pg.start()
        try:
            db = await create_database(pg.url)
            faults = [fh.kill9] * args.kills + [fh.restart_of(redis, "Redis"), fh.restart_of(pg, "PostgreSQL")]
            await one(
                "2 workers + queue worker, PostgreSQL + Redis",
                tmp,
                msgs,
                args.kills,
                db_url=db,
                redis_url=redis.url + "/0",
                workers=2,
                faults=faults,
            )
        finally:
            redis.cleanup()
            pg.cleanup()


if __name__ == "__main__":
    asyncio.run(main())
