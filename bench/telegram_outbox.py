"""Telegram outbox throughput and pacing against the loopback Bot API server.

    python bench/telegram_outbox.py [--chats 3000] [--burst 20]

Runs, all through the production path (Outbox -> OutboxWorker ->
TelegramSender -> aiogram -> HTTP on 127.0.0.1):

1. baseline: the same sender with rate limits off (what the loop can push; shows the
   ceiling below is Telegram's, not ours);
2. broadcast: ``--chats`` messages to as many private chats at Telegram's limits
   (30/s overall), while the fake server enforces those limits itself (a 30/s bucket
   with 3 messages of jitter slack; >= 1 s per chat, 0.1 s jitter) and answers 429 to
   any breach;
3. burst: ``--burst`` messages to one chat on their own, then again while 300 more
   broadcast messages compete for the global budget; expected >= 1 s apart.

The server runs in its own process so that a busy sender cannot bunch up the arrival
times it records.

Prints one JSON line per run. Load only goes to 127.0.0.1 and is bounded by the counts.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import socket
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

# run as a script: the repo root, not bench/ (bench/gamification.py would shadow the package)
sys.path[0] = str(Path(__file__).resolve().parent.parent)
os.environ.setdefault("BOT_JIEBA_CACHE_DIR", tempfile.gettempdir())

import aiohttp  # noqa: E402

from bot.core import storage  # noqa: E402
from bot.app import build_services  # noqa: E402
from bot.channels.telegram.mount import make_bot  # noqa: E402
from bot.channels.telegram.sender import TelegramSender  # noqa: E402
from bot.core.messages import Outgoing, Reply  # noqa: E402
from bot.core.models import OutboxMessage  # noqa: E402
from bot.core.outbox import OutboxWorker  # noqa: E402
from bot.core.settings import Settings  # noqa: E402
from tests.fakes.telegram_api import FakeTelegram, Limits, serve_forever  # noqa: E402

PER_CHAT_TOLERANCE = 0.05  # s of loopback jitter accepted before a gap counts as a violation


@dataclass
class Seen:
    method: str
    chat_id: str
    at: float
    status: int


class RemoteFake:
    """The loopback Bot API server in its own process, so a busy sender loop cannot
    bunch up the arrival times it records (CLOCK_MONOTONIC is system-wide)."""

    def __init__(self, enforce_limits: bool) -> None:
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        self.token = FakeTelegram().token
        ctx = multiprocessing.get_context("spawn")
        self.proc = ctx.Process(target=serve_forever, args=(self.port, enforce_limits), daemon=True)

    async def __aenter__(self) -> "RemoteFake":
        self.proc.start()
        self.http = aiohttp.ClientSession()
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline and self.proc.is_alive():
            try:
                async with self.http.get(f"{self.url}/_calls") as resp:
                    if resp.status == 200:
                        return self
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.1)
        await self.http.close()
        raise SystemExit("fake Bot API server did not start")

    async def __aexit__(self, *exc: object) -> None:
        await self.http.close()
        self.proc.terminate()
        self.proc.join(5)

    async def calls(self) -> list[Seen]:
        async with self.http.get(f"{self.url}/_calls") as resp:
            return [Seen(**c) for c in await resp.json()]

    async def reset(self) -> None:
        async with self.http.post(f"{self.url}/_reset") as resp:
            resp.raise_for_status()


def make_settings(db: Path, fake: RemoteFake, **rates: Any) -> Settings:
    return Settings(
        _env_file=None,  # type: ignore[call-arg]
        database_url=f"sqlite://{db}",
        redis_url="",
        telegram_token=fake.token,
        telegram_api_base=fake.url,
        telegram_webhook_secret="bench",
        outbox_poll_seconds=0.05,
        **rates,
    )


class Stack:
    """Just the sending path of the service: database, outbox, worker, Telegram sender."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings

    async def __aenter__(self) -> "Stack":
        await storage.open_db(self.settings.database_url, create_schema=True)
        self.services = (await build_services(self.settings)).services
        self.bot = make_bot(self.settings)
        self.sent_at: list[float] = []  # client side, as each sendMessage leaves

        async def record(make_request, bot, method):  # type: ignore[no-untyped-def]
            if method.__api_method__ == "sendMessage":
                self.sent_at.append(time.monotonic())
            return await make_request(bot, method)

        self.bot.session.middleware(record)
        self.services.channels.register(TelegramSender(self.bot, self.settings, self.services.limiter))
        self.worker = OutboxWorker(self.settings, self.services.outbox, self.services.channels, self.services.limiter)
        self.task = asyncio.create_task(self.worker.run())
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.worker.stop()
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)
        await self.bot.session.close()
        await storage.close_db()


async def enqueue(stack: Stack, addresses: list[str], purpose: str = "broadcast") -> None:
    outbox = stack.services.outbox
    for i, address in enumerate(addresses):
        await outbox.enqueue(
            Outgoing(
                channel="telegram",
                address=address,
                reply=Reply(text=f"EveryCSR 通知 #{i}：本月流量包已到账。"),
                purpose=purpose,
            )
        )


async def wait_sent(n: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if await OutboxMessage.filter(status__in=["sent", "dead"]).count() >= n:
            return
        await asyncio.sleep(0.2)
    raise SystemExit(f"timed out waiting for {n} sends")


def rate(calls: list[Seen]) -> float:
    times = sorted(c.at for c in calls)
    return (len(times) - 1) / (times[-1] - times[0]) if len(times) > 1 else 0.0


def sends(calls: list[Seen]) -> list[Seen]:
    return [c for c in calls if c.method == "sendMessage" and c.status == 200]


def bucket_breaches(times: list[float]) -> int:
    """The fake server's global rule (30/s, 3 messages of slack) applied to the client's
    own send times: tells the sender's pacing apart from jitter on the way."""
    lim = Limits()
    step, tat, bad = 1.0 / lim.global_rate, 0.0, 0
    for t in sorted(times):
        if max(tat, t) - t > (lim.global_burst - 1) * step + 1e-9:
            bad += 1
            continue
        tat = max(tat, t) + step
    return bad


def per_chat_violations(calls: list[Seen], interval: float) -> int:
    by_chat: dict[str, list[float]] = {}
    for c in calls:
        by_chat.setdefault(c.chat_id, []).append(c.at)
    gaps = [b - a for ts in by_chat.values() for a, b in zip(sorted(ts), sorted(ts)[1:])]
    return sum(1 for g in gaps if g < interval - PER_CHAT_TOLERANCE)


def burst_figures(calls: list[Seen], chat: str, label: str) -> dict[str, Any]:
    mine = sorted(c.at for c in sends(calls) if c.chat_id == chat)
    gaps = [b - a for a, b in zip(mine, mine[1:])]
    return {
        "run": label,
        "messages": len(mine),
        "span_s": round(mine[-1] - mine[0], 2) if mine else None,
        "gap_min_s": round(min(gaps), 3) if gaps else None,
        "gap_max_s": round(max(gaps), 3) if gaps else None,
        "per_chat_violations": sum(1 for g in gaps if g < 1.0 - PER_CHAT_TOLERANCE),
        "http_429": sum(1 for c in calls if c.status == 429),
    }


async def run_baseline(tmp: Path, n: int) -> dict[str, Any]:
    async with RemoteFake(enforce_limits=False) as fake:
        settings = make_settings(
            tmp / "base.sqlite3",
            fake,
            telegram_rate_global=0.0,
            telegram_rate_per_chat=0.0,
            telegram_rate_per_group=0.0,
        )
        async with Stack(settings) as stack:
            await enqueue(stack, [str(200_000 + i) for i in range(n)])
            await wait_sent(n, 120)
        ok = sends(await fake.calls())
        return {"run": "baseline (limits off)", "messages": len(ok), "msg_per_s": round(rate(ok), 1)}


async def run_broadcast(tmp: Path, n: int, burst: int) -> list[dict[str, Any]]:
    async with RemoteFake(enforce_limits=True) as fake:
        settings = make_settings(tmp / "broadcast.sqlite3", fake)
        async with Stack(settings) as stack:
            await enqueue(stack, [str(100_000 + i) for i in range(n)])
            await wait_sent(n, n / settings.telegram_rate_global * 1.5 + 60)
            calls = await fake.calls()
            ok = sends(calls)
            achieved = rate(ok)
            broadcast = {
                "run": f"broadcast {n} chats",
                "messages": len(ok),
                "msg_per_s": round(achieved, 2),
                "ceiling": settings.telegram_rate_global,
                "of_ceiling_pct": round(100 * achieved / settings.telegram_rate_global, 1),
                "http_429": sum(1 for c in calls if c.status == 429),
                "client_side_breaches": bucket_breaches(stack.sent_at),
                "per_chat_violations": per_chat_violations(ok, 1.0),
                "dead": await OutboxMessage.filter(status="dead").count(),
            }
            # a burst to one chat on its own: paced at the per-chat limit
            await fake.reset()
            await enqueue(stack, ["888888"] * burst, purpose="notification")
            await wait_sent(n + burst, burst * 2 + 30)
            alone = burst_figures(await fake.calls(), "888888", f"burst {burst} to one chat")
            # and while 300 more broadcast messages compete for the global budget
            await fake.reset()
            target = "999999"
            competing = [str(300_000 + i) for i in range(300)]
            await asyncio.gather(enqueue(stack, competing), enqueue(stack, [target] * burst, purpose="notification"))
            await wait_sent(n + burst + 300 + burst, 120)
            calls = await fake.calls()
        during = burst_figures(calls, target, f"burst {burst} to one chat during a 300-message broadcast")
        others = [c for c in sends(calls) if c.chat_id != target]
        during["broadcast_alongside_msg_per_s"] = round(rate(others), 2)
        during["http_429"] = sum(1 for c in calls if c.status == 429)
        return [broadcast, alone, during]


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--chats", type=int, default=3000)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--baseline", type=int, default=1000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as d:
        tmp = Path(d)
        results = [await run_baseline(tmp, args.baseline)]
        results += await run_broadcast(tmp, args.chats, args.burst)
    for r in results:
        print(json.dumps(r, ensure_ascii=False))


if __name__ == "__main__":
    asyncio.run(main())
