"""The inbox queue page (ordered, filtered and paged in SQL) on a large backlog.

    .venv/bin/python bench/inbox_queue.py [TICKETS ...]   (default 1000 10000 50000)

A fresh SQLite database per size: that many live tickets (1 % urgent, 5 % tagged "vip",
half on SMS), then the median time of the first page, a tag filter, a channel filter, a
text search and the last page.
"""

from __future__ import annotations

import asyncio
import statistics
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bot.core import storage  # noqa: E402
from bot.core.models import Member  # noqa: E402
from community.inbox import queue as q  # noqa: E402
from community.inbox.models import Ticket  # noqa: E402
from community.members.models import MemberTag  # noqa: E402


async def fill(n: int) -> None:
    far = datetime.now(timezone.utc) + timedelta(days=1)
    for start in range(0, n, 5000):
        size = min(5000, n - start)
        await Member.bulk_create([Member(display_name=f"m{start + i}") for i in range(size)])
    ids = await Member.all().order_by("id").values_list("id", flat=True)
    for start in range(0, n, 5000):
        chunk = ids[start : start + 5000]
        await Ticket.bulk_create(
            [
                Ticket(
                    member_id=mid,
                    channel="sms" if mid % 2 else "web",
                    reason="human",
                    summary=f"问题 {mid} 宽带",
                    open_key=mid,
                    urgent=mid % 100 == 0,
                    first_response_due=far,
                    resolution_due=far,
                )
                for mid in chunk
            ]
        )
        await MemberTag.bulk_create([MemberTag(member_id=mid, tag="vip") for mid in chunk if mid % 20 == 0])


async def timed(label: str, f: q.QueueFilter, page: int = 1, runs: int = 7) -> None:
    times = []
    for _ in range(runs):
        t0 = time.perf_counter()
        result = await q.page(f, page)
        times.append(time.perf_counter() - t0)
    print(f"| {label} | {result.total} | {statistics.median(times) * 1000:.1f} ms |")


async def run(n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        await storage.open_db(f"sqlite://{tmp}/q.sqlite3", create_schema=True)
        try:
            t0 = time.perf_counter()
            await fill(n)
            print(f"\n{n} live tickets (filled in {time.perf_counter() - t0:.1f} s)\n")
            print("| query | matching | median |")
            print("| --- | --- | --- |")
            await timed("first page", q.QueueFilter())
            await timed("tag=vip", q.QueueFilter(tag="vip"))
            await timed("channel=sms", q.QueueFilter(channel="sms"))
            await timed("search 宽带", q.QueueFilter(search="宽带"))
            await timed("last page", q.QueueFilter(), page=10**6)
        finally:
            await storage.close_db()


def main() -> int:
    sizes = [int(a) for a in sys.argv[1:]] or [1000, 10000, 50000]
    for n in sizes:
        asyncio.run(run(n))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
