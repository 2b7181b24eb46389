"""Kill -9 at random points of a burst on every channel: nothing lost, nothing twice.

See tests/fault_harness.py for how each channel redelivers and what is counted; the
volume runs are ``bench/faults.py`` (bench/RESULTS.md).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests import fault_harness as fh

pytestmark = pytest.mark.services


def assert_clean(reports: list[fh.Report], service: fh.Service) -> None:
    text = "\n".join(r.line() + "".join(f"\n    {e}" for e in r.examples) for r in reports)
    text += f"\ndowntimes {[round(d, 1) for d in service.downtimes]}"
    assert all(r.messages for r in reports), text
    assert all(r.lost == 0 and r.processed_twice == 0 for r in reports), text
    # Telegram, WeChat's customer-service API and Twilio take no idempotency key: a kill
    # between the provider's "ok" and recording it repeats that reply (measured in
    # bench/faults.py; at most the sends in flight at the kill)
    assert sum(r.delivered_twice for r in reports) <= 2 * service.kills, text
    # WeChat stops after three retries (15 s): only a message whose every retry found the
    # service down may be given up, and those are few
    assert sum(r.given_up for r in reports) <= service.kills, text


async def test_single_process_killed_mid_burst(tmp_path: Path) -> None:
    msgs = fh.build_burst(8, seed=3)
    reports, service = await fh.run(
        tmp_path, msgs, db_url=f"sqlite://{tmp_path / 'f.sqlite3'}", kills=1, concurrency=12, seed=3
    )
    assert service.kills == 1
    assert_clean(reports, service)


async def test_workers_survive_a_killed_web_worker_queue_worker_and_backend_restarts(
    tmp_path: Path,
    redis_server,
    postgres_cluster,
    fresh_redis_url: str,
    fresh_postgres_url: str,  # type: ignore[no-untyped-def]
) -> None:
    """``run --workers 2`` on PostgreSQL + Redis: a web worker and the queue worker are
    killed mid-burst, then Redis and PostgreSQL restart; every channel keeps its promise."""
    msgs = fh.build_burst(6, seed=5)
    faults = [
        fh.kill9_child("bot.workers web"),
        fh.kill9_child("bot.workers queue"),
        fh.restart_of(redis_server, "Redis"),
        fh.restart_of(postgres_cluster, "PostgreSQL"),
    ]
    reports, service = await fh.run(
        tmp_path,
        msgs,
        db_url=fresh_postgres_url,
        redis_url=fresh_redis_url,
        workers=2,
        faults=faults,
        concurrency=12,
        seed=5,
    )
    assert service.kills == 2 and len(service.faults) == 4
    assert_clean(reports, service)
