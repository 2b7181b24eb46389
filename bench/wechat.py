#!/usr/bin/env python
"""WeChat safe-mode callbacks answered per second, and latency, under concurrent senders.

Side by side in one run, each server in its own subprocess on 127.0.0.1, the same load
generator (aiohttp, ``--concurrency`` senders, each request built as WeChat builds it:
AES-encrypted text message, signature + msg_signature query parameters):

* **EveryCSR** ``/wechat``: the real service — safe-mode decrypt, the whole pipeline
  (dedup, member lookup, transcript, knowledge-base answer with choices, outbound
  transcript) on SQLite, encrypted passive reply. Every request has its own MsgId so
  nothing is served from the dedup cache.
* **WeRoBot 1.13.1** (the established Python WeChat framework): the same encrypted
  message, a fixed text reply, served by its WSGI app on a threaded wsgiref server.

    python bench/wechat.py                      # 200 senders, 8 s per server
    python bench/wechat.py --concurrency 200 --seconds 8
    python bench/wechat.py --open-loop half     # + each server open-loop at half its saturation
    python bench/wechat.py --open-loop 300      # each server open-loop at 300 callbacks/s only

A sample of the answers is decrypted and checked. Prints a table; the last line is JSON.
Each row has the server's CPU per answered callback (utime + stime of the server process
from /proc over the measured window, ms of one core).

``--open-loop RATE`` sends callbacks at a constant arrival rate (Poisson, or ``--arrivals
fixed``), each request its own task on a connection pool without a limit, and reports the
achieved rate, p50/p95/p99/max from the scheduled send time, errors and the callbacks the
generator sent late (> 5 ms behind schedule). ``--open-loop half`` measures each server
closed-loop first (the usual table) and then drives it open-loop at half of that rate, on
new senders (openids) with the closed loop's shape.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
# bench/ holds scripts named like the packages (bench/gamification.py): import the packages
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
from bench._loadgen import (  # noqa: E402
    OPEN_HEADER,
    CpuMeter,
    FixedPipeline,
    OpenLoopResult,
    RawHttp,
    free_port,
    half_rate,
    open_loop,
    parse_open_loop,
    settle,
    wait_up,
)

# --serve --tree DIR: the server imports EveryCSR (bot, community …) from another checkout
# (``--also``); the bench's own helpers above stay this checkout's
if "--tree" in sys.argv:
    sys.path.insert(0, sys.argv[sys.argv.index("--tree") + 1])

TOKEN = "bench-token"
AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
APPID = "wx0123456789abcdef"
QUESTION = "我的流量还剩多少，怎么查？"
FIXED = "收到，我们会尽快答复。"


# --- the servers (run as subprocesses of this script) ----------------------------------------------
def serve_everycsr(port: int, db: str, fixed: bool) -> None:
    os.environ.update(
        BOT_WECHAT_TOKEN=TOKEN,
        BOT_WECHAT_AES_KEY=AES_KEY,
        BOT_WECHAT_APPID=APPID,
        BOT_DATABASE_URL=f"sqlite://{db}",
        BOT_OUTBOX_ENABLED="false",
        BOT_LOG_LEVEL="WARNING",
        BOT_JIEBA_CACHE_DIR=str(Path(db).parent),
    )
    import logging

    from aiohttp import web

    from bot.app import create_app
    from bot.core.app_keys import SERVICES
    from bot.core.settings import Settings

    logging.basicConfig(level=logging.WARNING)
    logging.getLogger("jieba").setLevel(logging.WARNING)
    settings = Settings(_env_file=None)  # type: ignore[call-arg]
    app = create_app(settings, db_setup="schema")

    async def load_kb(app: web.Application):  # type: ignore[no-untyped-def]
        from bot.cli import SAMPLE_KB, import_kb

        await import_kb(SAMPLE_KB, quiet=True)
        await app[SERVICES].kb.load()
        if fixed:
            app[SERVICES].pipeline = FixedPipeline(FIXED)  # type: ignore[assignment]
        yield

    from bot.core.event_loop import run_web

    app.cleanup_ctx.insert(1, load_kb)
    run_web(app, settings, host="127.0.0.1", port=port, backlog=1024)  # as `python -m bot run` does


def serve_werobot(port: int) -> None:
    from socketserver import ThreadingMixIn
    from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

    import werobot

    robot = werobot.WeRoBot(token=TOKEN, app_id=APPID, encoding_aes_key=AES_KEY, SESSION_STORAGE=False)
    robot.logger.setLevel("ERROR")

    @robot.text
    def reply(message):  # type: ignore[no-untyped-def]
        return FIXED

    class Server(ThreadingMixIn, WSGIServer):
        daemon_threads = True
        request_queue_size = 1024

    class Quiet(WSGIRequestHandler):
        def log_message(self, *args) -> None:  # type: ignore[no-untyped-def]
            pass

    make_server("127.0.0.1", port, robot.wsgi, server_class=Server, handler_class=Quiet).serve_forever()


# --- the load ---------------------------------------------------------------------------------------------
async def load(
    port: int,
    *,
    concurrency: int,
    seconds: float,
    unique: bool,
    expect: str,
    max_requests: int,
    offset: int = 10_000_000,
    cpu_pid: int | None = None,
) -> dict[str, float]:
    import aiohttp

    from tests.fakes.wechat_api import WeChatCallbacks

    from urllib.parse import urlencode

    from yarl import URL

    wx = WeChatCallbacks(TOKEN, AES_KEY, APPID)
    base = f"http://127.0.0.1:{port}/wechat?"

    def request(i: int) -> tuple[dict[str, str], URL, bytes]:
        params, body = wx.build(
            wx.text_xml(f"oBench{i % 500}", QUESTION, str(offset + i)), mode="safe", openid=f"oBench{i % 500}"
        )
        return params, URL(base + urlencode(params), encoded=True), body

    same = request(0)
    latencies: list[float] = []
    errors = 0
    counter = 0
    # build requests ahead: encrypting is WeChat's work, not the server's
    pool = [request(i) for i in range(max_requests)] if unique else []
    checked = 0
    stop_at = time.monotonic() + seconds

    async def sender(session: aiohttp.ClientSession) -> None:
        nonlocal counter, errors, checked
        while time.monotonic() < stop_at and counter < max_requests:
            i = counter
            counter += 1
            params, url, body = pool[i] if unique else same
            t0 = time.perf_counter()
            try:
                async with session.post(url, data=body) as resp:
                    text = await resp.text()
                    ok = resp.status == 200
            except aiohttp.ClientError:
                ok, text = False, ""
            latencies.append(time.perf_counter() - t0)
            if not ok:
                errors += 1
            elif checked < 50 or i % 97 == 0:  # decrypt and check a sample of answers
                reply = wx.read_reply(text, params)
                if expect not in reply.get("Content", ""):
                    errors += 1
                checked += 1

    meter = CpuMeter(cpu_pid)
    meter.prepare()
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        started = time.perf_counter()
        meter.start()
        await asyncio.gather(*[sender(session) for _ in range(concurrency)])
        elapsed = time.perf_counter() - started
        meter.stop()
    latencies.sort()
    n = len(latencies)
    cpu_s = meter.seconds
    return {
        "requests": n,
        "errors": errors,
        "rps": n / elapsed,
        "p50_ms": 1000 * latencies[n // 2],
        "p99_ms": 1000 * latencies[min(n - 1, int(n * 0.99))],
        "max_ms": 1000 * latencies[-1],
        "near_deadline": sum(1 for x in latencies if x >= 4.0),
        "mean_ms": 1000 * statistics.fmean(latencies),
        "cpu_ms_per_answered": 1000 * cpu_s / (n - errors) if cpu_s is not None and n > errors else 0.0,
        "server_cpu_share": meter.share or 0.0,
    }


async def open_load(
    port: int,
    *,
    rate: float,
    seconds: float,
    unique: bool,
    expect: str,
    arrivals: str,
    cpu_pid: int,
    offset: int = 20_000_000,
) -> OpenLoopResult:
    """Callbacks at a constant arrival rate ``rate``/s for ``seconds`` (after 1 s of warm-up),
    each with its own MsgId from new senders (``oOpen0``…``oOpen499``) when ``unique``."""
    from urllib.parse import urlencode

    from tests.fakes.wechat_api import WeChatCallbacks

    wx = WeChatCallbacks(TOKEN, AES_KEY, APPID)

    def request(i: int) -> tuple[dict[str, str], str, bytes]:
        openid = f"oOpen{i % 500}"
        params, body = wx.build(wx.text_xml(openid, QUESTION, str(offset + i)), mode="safe", openid=openid)
        return params, "/wechat?" + urlencode(params), body

    # build requests ahead (encrypting is WeChat's work): Poisson arrivals need some slack
    expected = rate * (seconds + 1.0)
    pool = [request(i) for i in range(int(expected * 1.1 + 6 * expected**0.5 + 50))] if unique else []
    same = request(0)
    checked = 0

    async def send(client: RawHttp, i: int) -> bool:
        nonlocal checked
        if not unique:
            params, target, body = same
        else:
            params, target, body = pool[i] if i < len(pool) else request(i)
        status, data = await client.request("POST", target, body, "text/xml")
        if status != 200:
            return False
        if checked < 50 or i % 97 == 0:  # decrypt and check a sample of answers
            checked += 1
            return expect in wx.read_reply(data.decode("utf-8"), params).get("Content", "")
        return True

    return await open_loop(
        send, port=port, rate=rate, duration=seconds, arrivals=arrivals, cpu_pid=cpu_pid, timeout=30.0
    )


def run_one(name: str, cmd: list[str], port: int, **kw: Any) -> tuple[dict[str, float] | None, OpenLoopResult | None]:
    log = tempfile.TemporaryFile()
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=log)
    try:
        try:
            asyncio.run(wait_up(port))
        except RuntimeError:
            log.seek(0)
            sys.stderr.write(log.read().decode("utf-8", "replace")[-3000:])
            raise
        if kw["settle"]:  # start-up work (embedding, calibration) is not the load's
            asyncio.run(settle(proc.pid, label=f"{name} start-up"))
        asyncio.run(
            load(
                port, concurrency=20, seconds=1.0, unique=kw["unique"], expect=kw["expect"], max_requests=200, offset=1
            )
        )  # warm-up (its own MsgIds): jieba, caches, connections
        result = None
        if kw["open_loop"] in (None, "half"):
            result = asyncio.run(
                load(
                    port,
                    concurrency=kw["concurrency"],
                    seconds=kw["seconds"],
                    unique=kw["unique"],
                    expect=kw["expect"],
                    max_requests=kw["max_requests"],
                    cpu_pid=proc.pid,
                )
            )
        opened = None
        if kw["open_loop"] is not None:
            if kw["settle"]:  # the closed loop's leftover work is not the open loop's
                asyncio.run(settle(proc.pid, label=f"{name} after the closed loop"))
            rate = half_rate(result["rps"]) if result is not None else float(kw["open_loop"])
            opened = asyncio.run(
                open_load(
                    port,
                    rate=rate,
                    seconds=kw["seconds"],
                    unique=kw["unique"],
                    expect=kw["expect"],
                    arrivals=kw["arrivals"],
                    cpu_pid=proc.pid,
                )
            )
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
    return result, opened


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--concurrency", type=int, default=200)
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--max-requests", type=int, default=40_000)
    ap.add_argument(
        "--open-loop",
        metavar="RATE|half",
        help="constant arrival rate in callbacks/s, or 'half': half of each server's closed-loop saturation",
    )
    ap.add_argument("--arrivals", choices=["poisson", "fixed"], default="poisson")
    ap.add_argument(
        "--no-settle",
        dest="settle",
        action="store_false",
        help="measure as soon as the port opens (as before 2026-12): start-up work then shares the CPU",
    )
    ap.add_argument("--serve", choices=["everycsr", "werobot"], help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--db", help=argparse.SUPPRESS)
    ap.add_argument("--fixed", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--tree", help=argparse.SUPPRESS)
    ap.add_argument(
        "--also",
        action="append",
        default=[],
        metavar="DIR",
        help="another EveryCSR checkout whose whole pipeline is measured in the same run",
    )
    args = ap.parse_args()
    if args.serve == "everycsr":
        serve_everycsr(args.port, args.db, args.fixed)
        return 0
    if args.serve == "werobot":
        serve_werobot(args.port)
        return 0

    try:
        open_mode = parse_open_loop(args.open_loop)
    except ValueError as exc:
        ap.error(str(exc))
    common = dict(
        concurrency=args.concurrency,
        seconds=args.seconds,
        max_requests=args.max_requests,
        open_loop=open_mode,
        arrivals=args.arrivals,
        settle=args.settle,
    )
    results: dict[str, dict[str, float]] = {}
    opened: dict[str, OpenLoopResult] = {}

    def keep(name: str, pair: tuple[dict[str, float] | None, OpenLoopResult | None]) -> None:
        if pair[0] is not None:
            results[name] = pair[0]
        if pair[1] is not None:
            opened[name] = pair[1]

    port = free_port()
    keep(
        "werobot",
        run_one(
            "werobot",
            [sys.executable, __file__, "--serve", "werobot", "--port", str(port)],
            port,
            unique=False,
            expect=FIXED,
            **common,
        ),
    )
    for name, fixed in (("everycsr", True), ("everycsr+kb", False)):
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            cmd = [
                sys.executable,
                __file__,
                "--serve",
                "everycsr",
                "--port",
                str(port),
                "--db",
                str(Path(tmp) / "bench.sqlite3"),
            ] + (["--fixed"] if fixed else [])
            keep(name, run_one(name, cmd, port, unique=True, expect=FIXED if fixed else "流量", **common))
    for i, tree in enumerate(args.also, start=1):
        with tempfile.TemporaryDirectory() as tmp:
            port = free_port()
            cmd = [sys.executable, __file__, "--serve", "everycsr", "--port", str(port)]
            cmd += ["--db", str(Path(tmp) / "bench.sqlite3"), "--tree", str(Path(tree).resolve())]
            keep(f"also{i}+kb", run_one(f"also{i}+kb", cmd, port, unique=True, expect="流量", **common))
            print(f"also{i}+kb = {tree}")
    out: dict[str, object] = {}
    if results:
        print(
            f"safe-mode text callbacks, {args.concurrency} concurrent senders, {args.seconds:g} s each, "
            f"nproc={os.cpu_count()}"
        )
        print(
            f"{'server':<12} {'req':>7} {'err':>4} {'req/s':>8} {'p50 ms':>8} {'p99 ms':>8} {'max ms':>8} {'>=4s':>5}"
            f" {'CPU ms/ans':>10}"
        )
        for name, r in results.items():
            print(
                f"{name:<12} {r['requests']:>7.0f} {r['errors']:>4.0f} {r['rps']:>8.1f} {r['p50_ms']:>8.1f} "
                f"{r['p99_ms']:>8.1f} {r['max_ms']:>8.1f} {r['near_deadline']:>5.0f} {r['cpu_ms_per_answered']:>10.3f}"
            )
        ratio = results["everycsr"]["rps"] / results["werobot"]["rps"]
        print(
            f"throughput ratio EveryCSR / WeRoBot (both a fixed reply): {ratio:.2f}x; "
            f"with the whole pipeline: {results['everycsr+kb']['rps'] / results['werobot']['rps']:.2f}x"
        )
        out = {"ratio": round(ratio, 2), **{k: {m: round(v, 3) for m, v in r.items()} for k, r in results.items()}}
    if opened:
        how = "half of each server's closed-loop rate" if open_mode == "half" else f"{open_mode:g} callbacks/s"
        print(
            f"\nopen loop: {args.arrivals} arrivals at {how}, {args.seconds:g} s each after 1 s of warm-up; "
            "latency from the scheduled send; late = sent > 5 ms after schedule\n"
        )
        print(OPEN_HEADER)
        for name, o in opened.items():
            print(o.row(name))
        out["open_loop"] = {k: o.as_dict() for k, o in opened.items()}
    print(json.dumps(out))
    return 0


if __name__ == "__main__":
    sys.exit(main())
