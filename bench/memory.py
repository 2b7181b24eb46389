"""Resident memory of one web worker with a large knowledge base and many members, and a soak.

    python bench/memory.py                                  # 10,000 items, 100,000 members, 3,000 messages
    python bench/memory.py --soak 30 --rate 50              # + 30 min of steady traffic, RSS every 30 s
    python bench/memory.py --redis --soak 5                 # the worker on Redis stores (production mode)
    python bench/memory.py --items 0 --members 0 --messages 500   # the same worker on an empty database

Builds a temporary SQLite database the operator's way: a synthetic knowledge base of
``--items`` items (two questions each: title and one variant, built from jieba's
dictionary words as in bench/faq_accuracy.py's scale mode, and an answer of ~40 words) imported
with ``python -m bot kb import FILE``, then ``--members`` members each with a web chat account
(``m0``…), inserted in bulk. Starts the real worker (``python -m bot run``, as
bench/pipeline.py does; with ``--redis`` also a throw-away redis-server, so that dedup keys,
conversation state and rate limits live in Redis as in production) and reports its resident
size (VmRSS from /proc/PID/status, and VmHWM, the peak):

1. idle, once the start-up work is over (index build, embedding of the questions for the
   semantic stage, calibration: the worker's CPU is quiet for 2 s);
2. after ``--messages`` web chat messages at ``--rate``/s (open loop) from as many distinct
   existing members, each a distinct question (a knowledge-base title with a character
   dropped and a phrase around it);
3. with ``--soak MINUTES``: an open-loop stream at ``--rate``/s from an ever-growing set of new
   members (each sends two messages: first contact, then a returning one), RSS sampled every
   ``--sample-every`` s; prints the series and the slope of the second half (least squares,
   MB per 10 minutes). Flat means the slope is within the noise of the samples.

Everything runs on 127.0.0.1; the request count is bounded by rate × time. Prints tables and,
last, one JSON line.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
# the repository root, not bench/, first: bench/ holds scripts named like packages
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from bench._loadgen import (  # noqa: E402
    CpuMeter,
    OpenLoopResult,
    RawHttp,
    Send,
    descendants,
    free_port,
    open_loop,
    pct,
    rss_kb,
    settle,
    wait_up,
)
from bot.web.chat_session import user_hash  # noqa: E402

IDENTITY_SECRET = "bench-identity-secret"
SETTLE_QUIET = 2.0


# --- the data ----------------------------------------------------------------------------------------------------
def vocabulary() -> list[str]:
    import jieba

    jieba.setLogLevel(60)
    jieba.initialize()
    top = sorted(jieba.dt.FREQ.items(), key=lambda x: -x[1])[:20000]
    return [w for w, f in top if len(w) >= 2 and f > 0][:6000]


def synthetic_kb(n: int, words: list[str], seed: int = 7) -> list[dict[str, object]]:
    rnd = random.Random(seed)

    def phrase(lo: int, hi: int) -> str:
        return "".join(rnd.choice(words) for _ in range(rnd.randint(lo, hi)))

    return [
        {
            "key": f"syn-{i}",
            "category": f"cat{i % 20}",
            "zh_CN": {
                "title": phrase(3, 6),
                "variants": [phrase(3, 6)],
                "answer": "。".join(phrase(8, 12) for _ in range(4)),
            },
        }
        for i in range(n)
    ]


class Questions:
    """Questions near the knowledge base's titles: a title with a character dropped and a phrase
    around it (millions of distinct texts for 10,000 titles, so a soak seldom repeats one)."""

    PREFIX = ("请问", "我想问", "", "你好，", "麻烦问下")
    SUFFIX = ("怎么办", "？", "怎么弄", "是什么意思", "")

    def __init__(self, titles: list[str], seed: int = 11) -> None:
        self.titles = titles or ["宽带坏了怎么办", "话费余额怎么查", "怎么办理5G套餐"]
        self.rnd = random.Random(seed)

    def __call__(self, i: int) -> str:
        t = list(self.rnd.choice(self.titles))
        if len(t) > 4:
            del t[self.rnd.randrange(len(t))]
        return f"{self.rnd.choice(self.PREFIX)}{''.join(t)}{self.rnd.choice(self.SUFFIX)}"


async def insert_members(db_url: str, n: int, batch: int = 5000) -> float:
    """``n`` members with a web chat account each (external id ``m<i>``), in bulk; seconds taken."""
    from tortoise.transactions import in_transaction

    from bot.core import storage
    from bot.core.models import ChannelAccount, Member

    t0 = time.perf_counter()
    await storage.open_db(db_url)
    try:
        start = (await Member.all().order_by("-id").first() or Member(id=0)).id + 1
        for lo in range(0, n, batch):
            hi = min(n, lo + batch)
            async with in_transaction():
                await Member.bulk_create(
                    [Member(id=start + i, display_name=f"Member {i}", locale="zh_CN") for i in range(lo, hi)]
                )
                await ChannelAccount.bulk_create(
                    [
                        ChannelAccount(member_id=start + i, channel="web", external_id=f"m{i}", chat_id=f"m{i}")
                        for i in range(lo, hi)
                    ]
                )
    finally:
        await storage.close_db()
    return time.perf_counter() - t0


# --- measuring ---------------------------------------------------------------------------------------------------
def memory_of(pid: int) -> dict[str, float]:
    """VmRSS / VmHWM of the worker in MB, and the RSS of its child processes if any."""
    out = {"rss_mb": rss_kb(pid) / 1024, "hwm_mb": 0.0, "children_rss_mb": 0.0}
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmHWM:"):
                    out["hwm_mb"] = int(line.split()[1]) / 1024
    except OSError:
        pass
    out["children_rss_mb"] = sum(rss_kb(c) for c in descendants(pid) if c != pid) / 1024
    return out


def slope_mb_per_10min(samples: list[tuple[float, float]]) -> float:
    """Least-squares slope of (seconds, MB) samples, in MB per 10 minutes."""
    if len(samples) < 2:
        return 0.0
    n = len(samples)
    mx = sum(t for t, _ in samples) / n
    my = sum(m for _, m in samples) / n
    var = sum((t - mx) ** 2 for t, _ in samples)
    if not var:
        return 0.0
    return 600 * sum((t - mx) * (m - my) for t, m in samples) / var


@dataclass
class Sample:
    t: float
    rss_mb: float
    sent: int
    errors: int
    p99_ms: float
    cpu_share: float


@dataclass
class Run:
    phases: list[tuple[str, dict[str, float]]] = field(default_factory=list)
    soak: list[Sample] = field(default_factory=list)
    notes: dict[str, object] = field(default_factory=dict)


def web_sender(user_of: Callable[[int], str], text_of: Callable[[int], str], msg_prefix: str) -> Send:
    async def send(client: RawHttp, i: int) -> bool:
        user = user_of(i)
        body = {
            "user": user,
            "user_hash": user_hash(IDENTITY_SECRET, user),
            "text": text_of(i),
            "msg_id": f"{msg_prefix}-{i}",
        }
        status, data = await client.post_json("/api/v1/chat", body)
        return status == 200 and bool(json.loads(data).get("replies"))

    return send


async def soak(
    pid: int, port: int, questions: Questions, *, minutes: float, rate: float, every: float, run: Run
) -> OpenLoopResult:
    res = OpenLoopResult(target_rate=rate, duration=minutes * 60)
    send = web_sender(lambda i: f"soak-{i // 2}", questions, "soak")
    t0 = time.perf_counter()

    async def sampler() -> None:
        seen = 0
        meter = CpuMeter(pid)
        meter.start()
        while True:
            await asyncio.sleep(every)
            meter.stop()
            lat = res.latencies_ms[seen:]
            seen += len(lat)
            m = memory_of(pid)
            s = Sample(time.perf_counter() - t0, m["rss_mb"], res.sent, res.errors, pct(lat, 99), meter.share or 0.0)
            run.soak.append(s)
            print(
                f"  {s.t:7.0f} s  RSS {s.rss_mb:8.1f} MB  sent {s.sent:7d}  errors {s.errors:4d}  "
                f"p99 {s.p99_ms:8.1f} ms  worker CPU {100 * s.cpu_share:4.0f} %",
                flush=True,
            )
            meter.start()

    run.soak.append(Sample(0.0, memory_of(pid)["rss_mb"], 0, 0, 0.0, 0.0))
    task = asyncio.create_task(sampler())
    try:
        await open_loop(send, port=port, rate=rate, duration=minutes * 60, warmup=0.0, cpu_pid=pid, result=res, seed=3)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    run.soak.append(Sample(time.perf_counter() - t0, memory_of(pid)["rss_mb"], res.sent, res.errors, res.pct(99), 0.0))
    return res


# --- main --------------------------------------------------------------------------------------------------------
async def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--items", type=int, default=10_000)
    ap.add_argument("--members", type=int, default=100_000)
    ap.add_argument("--messages", type=int, default=3000, help="messages from distinct existing members")
    ap.add_argument("--rate", type=float, default=50.0, help="open-loop rate of the messages and the soak (msg/s)")
    ap.add_argument("--soak", type=float, default=0.0, metavar="MINUTES")
    ap.add_argument("--sample-every", type=float, default=30.0, metavar="SECONDS")
    ap.add_argument("--redis", action="store_true", help="run the worker on a throw-away redis-server")
    ap.add_argument("--settle-timeout", type=float, default=1800.0, help="longest wait for start-up work (s)")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory (database, logs)")
    args = ap.parse_args()
    if args.messages > args.members and args.members:
        ap.error("--messages must not exceed --members (one message per distinct member)")

    tmp = Path(tempfile.mkdtemp(prefix="everycsr-memory-"))
    db_url = f"sqlite://{tmp / 'memory.sqlite3'}"
    env = {
        **os.environ,
        "BOT_DATABASE_URL": db_url,
        "BOT_LOG_LEVEL": "WARNING",
        "BOT_JIEBA_CACHE_DIR": str(tmp),
        "BOT_REDIS_URL": "",
        "BOT_WEBCHAT_IDENTITY_SECRET": IDENTITY_SECRET,
        "BOT_WEBCHAT_RATE_PER_SESSION": "0",
        "BOT_WEBCHAT_RATE_PER_IP": "0",
        "PYTHONPATH": str(ROOT),
    }
    run = Run()
    redis = None
    proc: subprocess.Popen[bytes] | None = None
    try:
        # 1. the knowledge base, through the operator's CLI
        words = vocabulary()
        kb = synthetic_kb(args.items, words)
        kb_file = tmp / "kb.yaml"
        kb_file.write_text(yaml.safe_dump(kb, allow_unicode=True, sort_keys=False), encoding="utf-8")
        t0 = time.perf_counter()
        subprocess.run(
            [sys.executable, "-m", "bot", "migrate"], cwd=ROOT, env=env, check=True, stdout=subprocess.DEVNULL
        )
        if args.items:
            subprocess.run(
                [sys.executable, "-m", "bot", "kb", "import", str(kb_file), "--quiet"],
                cwd=ROOT,
                env=env,
                check=True,
                stdout=subprocess.DEVNULL,
            )
        run.notes["kb_import_s"] = round(time.perf_counter() - t0, 1)
        # 2. the members, in bulk
        run.notes["members_insert_s"] = round(await insert_members(db_url, args.members), 1) if args.members else 0
        run.notes["db_mb"] = round((tmp / "memory.sqlite3").stat().st_size / 2**20, 1)
        print(
            f"database: {args.items} items (import {run.notes['kb_import_s']} s), {args.members} members with a web "
            f"account (insert {run.notes['members_insert_s']} s), {run.notes['db_mb']} MB",
            flush=True,
        )
        if args.redis:
            from tests.fixtures_services import RedisServer

            redis = RedisServer()
            redis.start()
            env["BOT_REDIS_URL"] = redis.url + "/0"

        # 3. the worker
        port = free_port()
        log = tmp / "worker.log"
        t0 = time.perf_counter()
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot", "run", "--port", str(port)],
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
        )
        await wait_up(port, timeout=900)
        run.notes["port_open_s"] = round(time.perf_counter() - t0, 1)
        waited = await settle(proc.pid, quiet_for=SETTLE_QUIET, timeout=args.settle_timeout)
        run.notes["settled_s"] = round(time.perf_counter() - t0, 1)
        run.notes["settle_timed_out"] = waited >= args.settle_timeout
        print(
            f"worker pid {proc.pid}: port open after {run.notes['port_open_s']} s, start-up work done after "
            f"{run.notes['settled_s']} s{' (TIMED OUT)' if run.notes['settle_timed_out'] else ''}",
            flush=True,
        )
        run.phases.append(("idle after start-up", memory_of(proc.pid)))

        # 4. messages from distinct existing members
        questions = Questions([str(item["zh_CN"]["title"]) for item in kb])  # type: ignore[index]
        if args.messages:
            order = random.Random(5).sample(range(args.members), args.messages) if args.members else []
            send = web_sender(
                (lambda i: f"m{order[i % len(order)]}") if order else (lambda i: f"new-{i}"),
                questions,
                "distinct",
            )
            res = await open_loop(
                send,
                port=port,
                rate=args.rate,
                duration=args.messages / args.rate,
                warmup=0.0,
                arrivals="fixed",  # exactly --messages
                cpu_pid=proc.pid,
            )
            await settle(proc.pid, quiet_for=SETTLE_QUIET, timeout=120)
            run.phases.append((f"after {res.sent} messages from distinct members", memory_of(proc.pid)))
            run.notes["messages"] = res.as_dict()
            print(
                f"{res.sent} messages at {res.achieved_rate:.1f}/s: errors {res.errors}, late {res.late}, "
                f"p50 {res.pct(50):.1f} / p99 {res.pct(99):.1f} ms, worker CPU {res.cpu_ms_per_answered or 0:.2f} ms "
                "per answered message",
                flush=True,
            )

        # 5. soak
        soak_res = None
        if args.soak > 0:
            print(
                f"\nsoak: {args.soak:g} min at {args.rate:g} msg/s from new members, RSS every {args.sample_every:g} s"
            )
            soak_res = await soak(
                proc.pid, port, questions, minutes=args.soak, rate=args.rate, every=args.sample_every, run=run
            )
            run.phases.append((f"after the soak ({soak_res.sent} more messages)", memory_of(proc.pid)))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
        if redis is not None:
            redis.cleanup()
        if not args.keep:
            shutil.rmtree(tmp, ignore_errors=True)

    mode = "Redis stores" if args.redis else "in-process stores"
    print(f"\nweb worker (`python -m bot run`, SQLite, {mode}), {args.items} items, {args.members} members\n")
    print("| when | RSS MB | peak (VmHWM) MB | child processes MB |")
    print("| --- | --- | --- | --- |")
    for name, m in run.phases:
        print(f"| {name} | {m['rss_mb']:.1f} | {m['hwm_mb']:.1f} | {m['children_rss_mb']:.1f} |")
    out: dict[str, object] = {
        "items": args.items,
        "members": args.members,
        "redis": args.redis,
        **run.notes,
        "phases": {name: {k: round(v, 1) for k, v in m.items()} for name, m in run.phases},
    }
    if run.soak and soak_res is not None:
        series = [(s.t, s.rss_mb) for s in run.soak]
        half = [x for x in series if x[0] >= series[-1][0] / 2]
        second = slope_mb_per_10min(half)
        whole = slope_mb_per_10min(series)
        print(
            f"\nsoak: {soak_res.sent} messages ({soak_res.sent // 2} new members), errors {soak_res.errors}, "
            f"late {soak_res.late}, p99 {soak_res.pct(99):.1f} ms; RSS {series[0][1]:.1f} → {series[-1][1]:.1f} MB; "
            f"slope of the second half {second:+.2f} MB / 10 min (whole run {whole:+.2f})"
        )
        out["soak"] = {
            "minutes": args.soak,
            "rate": args.rate,
            "series": [[round(t), round(m, 1)] for t, m in series],
            "slope_second_half_mb_per_10min": round(second, 2),
            "slope_whole_mb_per_10min": round(whole, 2),
            **soak_res.as_dict(),
        }
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
