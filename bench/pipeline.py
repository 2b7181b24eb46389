"""Answered web-chat messages per second through the full pipeline vs a bare aiohttp echo.

Usage: .venv/bin/python bench/pipeline.py [--concurrency 64] [--duration 10] [--also DIR ...]

``--also DIR`` adds another EveryCSR checkout (say ``git worktree add /tmp/before REV``) to the
same run, started the same way, so a change is measured against its own past too.

Starts the servers as separate processes on loopback, one after the other: a bare
aiohttp JSON echo (the baseline), EveryCSR's web layer with a fixed reply instead of the
pipeline (the ceiling for any answer path behind it) and EveryCSR (`python -m bot run`,
SQLite, sample knowledge base), and drives each with the same closed-loop load of ``/api/v1/chat``
requests (real questions from the sample knowledge base, distinct users, unique
message ids). Prints a table and, last, one JSON line.
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
from bench._loadgen import closed_loop, free_port, wait_up  # noqa: E402
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
):  # type: ignore[no-untyped-def]
    proc = subprocess.Popen(cmd, env=env, cwd=cwd, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        await wait_up(port)
        rnd = random.Random(7)

        def body(cid: int, seq: int) -> dict[str, str]:
            user = f"bench-{cid}-{seq % 50}"  # the operator's verified visitor (identity verification)
            return {
                "user": user,
                "user_hash": user_hash(BENCH_IDENTITY_SECRET, user),
                "text": rnd.choice(qs),
                "msg_id": f"{name}-{cid}-{seq}",
            }

        return await closed_loop(
            f"http://127.0.0.1:{port}/api/v1/chat", body, concurrency=args.concurrency, duration=args.duration
        )
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
    args = parser.parse_args()
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
    full = others[0][1]
    print(f"concurrency {args.concurrency}, {args.duration:.0f} s each, {len(qs)} distinct questions\n")
    print("| server | requests | errors | req/s | p50 ms | p99 ms | mean ms |")
    print("| --- | --- | --- | --- | --- | --- | --- |")
    print(echo.row("bare aiohttp JSON echo"))
    print(fixed.row("EveryCSR web layer, fixed reply (no pipeline)"))
    print(full.row("EveryCSR /api/v1/chat (full pipeline)"))
    for root, result in others[1:]:
        print(result.row(f"EveryCSR at {root} (full pipeline)"))
    ratio = full.rps / echo.rps if echo.rps else 0.0
    print(
        f"\nfull pipeline throughput = {ratio:.1%} of the bare echo "
        f"(EveryCSR's web layer alone, fixed reply: {fixed.rps / echo.rps if echo.rps else 0:.1%})"
    )
    print(
        json.dumps(
            {
                "echo_rps": round(echo.rps, 1),
                "fixed_rps": round(fixed.rps, 1),
                "pipeline_rps": round(full.rps, 1),
                "ratio": round(ratio, 3),
                "pipeline_p50_ms": round(full.pct(50), 2),
                "pipeline_p99_ms": round(full.pct(99), 2),
                "echo_p99_ms": round(echo.pct(99), 2),
                "errors": full.errors,
                "also": [
                    {"root": str(root), "rps": round(r.rps, 1), "p99_ms": round(r.pct(99), 2)} for root, r in others[1:]
                ],
            }
        )
    )


if __name__ == "__main__":
    asyncio.run(main())
