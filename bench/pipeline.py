"""Answered web-chat messages per second through the full pipeline vs a bare aiohttp echo.

Usage: .venv/bin/python bench/pipeline.py [--concurrency 64] [--duration 10] [--also DIR ...]
                                          [--open-loop RATE|half] [--arrivals poisson|fixed]

``--also DIR`` adds another EveryCSR checkout (say ``git worktree add /tmp/before REV``) to the
same run, started the same way, so a change is measured against its own past too.

Starts the servers as separate processes on loopback, one after the other: a bare
aiohttp JSON echo (the baseline), EveryCSR's web layer with a fixed reply instead of the
pipeline (the ceiling for any answer path behind it) and EveryCSR (`python -m bot run`,
SQLite, sample knowledge base), and drives each with the same closed-loop load of ``/api/v1/chat``
requests (real questions from the sample knowledge base, distinct users, unique
message ids). Prints a table and, last, one JSON line. Each row has the server's CPU per
answered request (utime + stime of the server process and its children from /proc, over the
measured window, in ms of one core).

``--open-loop RATE`` drives each server at a constant arrival rate instead (requests/s,
Poisson arrivals unless ``--arrivals fixed``; each request its own task, no client pool) and
prints achieved rate, p50/p95/p99/max from the scheduled send time, errors and the requests
the generator sent late. ``--open-loop half`` first measures each server closed-loop (the
usual table), then drives that same server open-loop at half of its own saturation rate.
Open-loop senders have the closed loop's shape (``--concurrency`` × 50 distinct users, so
the same share of first contacts) under their own names and message ids.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
from bench._loadgen import (  # noqa: E402
    OPEN_HEADER,
    ROW_HEADER,
    LoadResult,
    OpenLoopResult,
    RawHttp,
    closed_loop,
    free_port,
    half_rate,
    open_loop,
    parse_open_loop,
    settle,
    wait_up,
)
from bot.web.chat_session import user_hash  # noqa: E402

BENCH_IDENTITY_SECRET = "bench-identity-secret"

ECHO_SERVER = """
import sys
from aiohttp import web
async def echo(request):
    body = await request.json()
    return web.json_response({"replies": [{"text": body.get("text", ""), "choices": [], "cards": []}]})
app = web.Application()
app.router.add_post("/api/v1/chat", echo)
web.run_app(app, host="127.0.0.1", port=int(sys.argv[1]), print=None, access_log=None)
"""

# EveryCSR's own web layer (middlewares, channel, JSON contract) with the pipeline replaced by a
# fixed reply: the ceiling of any answer path behind it on this machine
FIXED_SERVER = """
import sys
from bench._loadgen import FixedPipeline
from bot.app import create_app
from bot.core.app_keys import SERVICES
from bot.core.event_loop import run_web
from bot.core.settings import Settings

settings = Settings()
app = create_app(settings, db_setup="migrate")
async def fixed(app):
    app[SERVICES].pipeline = FixedPipeline("收到")
    yield
app.cleanup_ctx.append(fixed)
run_web(app, settings, host="127.0.0.1", port=int(sys.argv[1]))
"""


def questions() -> list[str]:
    data = yaml.safe_load((ROOT / "community" / "data" / "sample_kb.yaml").read_text(encoding="utf-8"))
    out: list[str] = []
    for item in data:
        for loc in ("zh_CN", "en"):
            if loc in item:
                out += item[loc]["variants"]
    out += ["火星上明天会下雨吗", "what is the meaning of life"]  # no-answer path too
    return out


async def run_one(
    name: str, cmd: list[str], env: dict[str, str], port: int, args: argparse.Namespace, qs: list[str], cwd: Path = ROOT
) -> tuple[LoadResult | None, OpenLoopResult | None]:
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    url = f"http://127.0.0.1:{port}/api/v1/chat"
    try:
        await wait_up(port)
        if args.settle:  # start-up work (embedding, calibration) is not the load's
            await settle(proc.pid, label=f"{name} start-up")
        rnd = random.Random(7)

        def body(cid: int, seq: int, tag: str = "") -> dict[str, str]:
            user = f"bench{tag}-{cid}-{seq % 50}"  # the operator's verified visitor (identity verification)
            return {
                "user": user,
                "user_hash": user_hash(BENCH_IDENTITY_SECRET, user),
                "text": rnd.choice(qs),
                "msg_id": f"{name}{tag}-{cid}-{seq}",
            }

        closed = None
        if args.open_loop in (None, "half"):
            closed = await closed_loop(
                url, body, concurrency=args.concurrency, duration=args.duration, cpu_pid=proc.pid
            )
        opened = None
        if args.open_loop is not None:
            if args.settle:  # the closed loop's leftover work is not the open loop's
                await settle(proc.pid, label=f"{name} after the closed loop")
            rate = half_rate(closed.rps) if closed is not None else float(args.open_loop)

            async def send(client: RawHttp, i: int) -> bool:
                # the closed loop's shape: client i % concurrency, its (i // concurrency)-th message
                b = body(i % args.concurrency, i // args.concurrency + 1, "-ol")
                status, _ = await client.post_json("/api/v1/chat", b)
                return status == 200

            opened = await open_loop(
                send, port=port, rate=rate, duration=args.duration, arrivals=args.arrivals, cpu_pid=proc.pid
            )
        return closed, opened
    finally:
        proc.terminate()
        proc.wait(timeout=20)


async def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--concurrency", type=int, default=64)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="DIR",
        help="another EveryCSR checkout to measure in the same run",
    )
    parser.add_argument(
        "--open-loop",
        metavar="RATE|half",
        help="constant arrival rate in requests/s, or 'half': half of each server's closed-loop saturation",
    )
    parser.add_argument("--arrivals", choices=["poisson", "fixed"], default="poisson")
    parser.add_argument(
        "--no-settle",
        dest="settle",
        action="store_false",
        help="measure as soon as the port opens (as before 2026-12): start-up work then shares the CPU",
    )
    args = parser.parse_args()
    try:
        args.open_loop = parse_open_loop(args.open_loop)
    except ValueError as exc:
        parser.error(str(exc))
    qs = questions()
    tmp = Path(tempfile.mkdtemp(prefix="everycsr-bench-"))
    env = {
        **os.environ,
        "BOT_DATABASE_URL": f"sqlite://{tmp / 'bench.sqlite3'}",
        "BOT_LOG_LEVEL": "WARNING",
        "BOT_JIEBA_CACHE_DIR": str(tmp),
        "BOT_REDIS_URL": "",
        "BOT_WEBCHAT_IDENTITY_SECRET": BENCH_IDENTITY_SECRET,
        # one address and 50 users per client send as fast as they can: the inbound limits are off
        "BOT_WEBCHAT_RATE_PER_SESSION": "0",
        "BOT_WEBCHAT_RATE_PER_IP": "0",
    }
    echo_port = free_port()
    echo = await run_one("echo", [sys.executable, "-c", ECHO_SERVER, str(echo_port)], env, echo_port, args, qs)
    fixed_port = free_port()
    fixed = await run_one(
        "fixed",
        [sys.executable, "-c", FIXED_SERVER, str(fixed_port)],
        {**env, "BOT_DATABASE_URL": f"sqlite://{tmp / 'fixed.sqlite3'}", "PYTHONPATH": str(ROOT)},
        fixed_port,
        args,
        qs,
    )
    others = []
    for i, root in enumerate([ROOT, *map(Path, args.also)]):
        db_env = {**env, "BOT_DATABASE_URL": f"sqlite://{tmp / f'bench{i}.sqlite3'}", "PYTHONPATH": str(root)}
        subprocess.run(
            [sys.executable, "-m", "bot", "kb", "import", str(ROOT / "community/data/sample_kb.yaml"), "--quiet"],
            env=db_env,
            cwd=root,
            check=True,
            stdout=subprocess.DEVNULL,
        )
        port = free_port()
        others.append(
            (
                root,
                await run_one(
                    f"bot{i}",
                    [sys.executable, "-m", "bot", "run", "--port", str(port)],
                    db_env,
                    port,
                    args,
                    qs,
                    cwd=root,
                ),
            )
        )
    names = [
        ("bare aiohttp JSON echo", echo),
        ("EveryCSR web layer, fixed reply (no pipeline)", fixed),
        ("EveryCSR /api/v1/chat (full pipeline)", others[0][1]),
        *[(f"EveryCSR at {root} (full pipeline)", r) for root, r in others[1:]],
    ]
    out: dict[str, object] = {}
    full, e, f = others[0][1][0], echo[0], fixed[0]
    if full is not None and e is not None and f is not None:
        print(f"concurrency {args.concurrency}, {args.duration:.0f} s each, {len(qs)} distinct questions\n")
        print(ROW_HEADER)
        for name, (closed, _) in names:
            assert closed is not None
            print(closed.row(name))
        ratio = full.rps / e.rps if e.rps else 0.0
        print(
            f"\nfull pipeline throughput = {ratio:.1%} of the bare echo "
            f"(EveryCSR's web layer alone, fixed reply: {f.rps / e.rps if e.rps else 0:.1%})"
        )
        out = {
            "echo_rps": round(e.rps, 1),
            "fixed_rps": round(f.rps, 1),
            "pipeline_rps": round(full.rps, 1),
            "ratio": round(ratio, 3),
            "pipeline_p50_ms": round(full.pct(50), 2),
            "pipeline_p99_ms": round(full.pct(99), 2),
            "echo_p99_ms": round(e.pct(99), 2),
            "errors": full.errors,
            "also": [
                {"root": str(root), "rps": round(r.rps, 1), "p99_ms": round(r.pct(99), 2)}
                for root, (r, _) in others[1:]
                if r is not None
            ],
            "cpu_ms_per_answered": {
                "echo": round(e.cpu_ms_per_answered or 0, 3),
                "fixed": round(f.cpu_ms_per_answered or 0, 3),
                "pipeline": round(full.cpu_ms_per_answered or 0, 3),
            },
        }
    if args.open_loop is not None:
        how = "half of each server's closed-loop rate" if args.open_loop == "half" else f"{args.open_loop:g} req/s"
        print(
            f"\nopen loop: {args.arrivals} arrivals at {how}, {args.duration:.0f} s each after 1 s of warm-up; "
            "latency from the scheduled send; late = sent > 5 ms after schedule\n"
        )
        print(OPEN_HEADER)
        for name, (_, opened) in names:
            assert opened is not None
            print(opened.row(name))
        keys = ["echo", "fixed", "pipeline", *[f"also{i}" for i in range(1, len(others))]]
        out["open_loop"] = {k: opened.as_dict() for k, (_, (_, opened)) in zip(keys, names) if opened is not None}
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
