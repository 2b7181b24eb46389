"""CPU per answered message through the pipeline itself, in one process, without HTTP.

Usage: .venv/bin/python bench/pipeline_cpu.py [--messages 6400] [--rounds 2] [--semantic auto|none]
                                              [--also DIR ...]

Why: the HTTP benchmarks (bench/pipeline.py, bench/wechat.py) share two cores between the
load generator and the server, so their CPU figures move with the machine's load. Here the
app is started in-process (SQLite, the sample knowledge base), start-up work is allowed to
finish (the encoder's vectors, self-calibration), 640 messages warm it up, then
``--messages`` web chat messages go through ``Pipeline.handle`` 64 at a time, the bench's
mix: 64 senders × 50 distinct members each (so a share are first contacts), real questions
from the sample knowledge base, unique message ids. The figure is the process's CPU time
(all threads: the driver's, the encoder's) divided by the messages. ``--also DIR`` runs the
same in another checkout, alternating rounds, so a change is measured against its own past
in the same minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CHILD = r"""
import asyncio, json, os, random, sys, tempfile, time
from pathlib import Path
import yaml

async def main(n, semantic):
    tmp = Path(tempfile.mkdtemp(prefix="everycsr-cpu-"))
    os.environ["BOT_JIEBA_CACHE_DIR"] = str(tmp)
    import logging; logging.basicConfig(level=logging.WARNING)
    from aiohttp.test_utils import TestServer
    from bot.app import create_app
    from bot.cli import import_kb
    from bot.core.app_keys import SERVICES
    from bot.core.messages import Incoming
    from bot.core.settings import Settings
    settings = Settings(_env_file=None, database_url=f"sqlite://{tmp / 'cpu.sqlite3'}", redis_url="",
                        outbox_enabled=False, log_level="WARNING", search_semantic=semantic)
    app = create_app(settings, db_setup="schema")
    server = TestServer(app)
    await server.start_server()
    sample = Path.cwd() / "community" / "data" / "sample_kb.yaml"
    await import_kb(sample, quiet=True)
    services = app[SERVICES]
    await services.kb.load()
    kb, matcher = services.kb, services.kb.matcher
    semantic = getattr(matcher, "_semantic", None)
    # start-up work (the encoder's vectors, self-calibration) is not what a message costs
    while (semantic is not None and semantic.pending) or (
        getattr(kb, "_calibrating", None) is not None and not kb._calibrating.done()
    ):
        await asyncio.sleep(0.5)
    data = yaml.safe_load(sample.read_text("utf-8"))
    qs = [v for item in data for loc in ("zh_CN", "en") if loc in item for v in item[loc]["variants"]]
    rnd = random.Random(7)
    pipe = services.pipeline

    def incoming(i):
        cid, seq = i % 64, i // 64
        return Incoming(channel="web", user=f"#bench-{cid}-{seq % 50}", text=rnd.choice(qs),
                        msg_id=f"m{i}", locale_hint="zh_CN")

    await asyncio.gather(*(pipe.handle(incoming(i)) for i in range(640)))
    import gc; gc.collect(); gc.freeze()
    cpu0, wall0 = time.process_time(), time.perf_counter()
    answered = 0
    for start in range(640, 640 + n, 64):
        for handled in await asyncio.gather(*(pipe.handle(incoming(i)) for i in range(start, start + 64))):
            answered += bool(handled.replies)
    cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    print(json.dumps({"cpu_ms": 1000 * cpu / n, "wall_ms": 1000 * wall / n, "answered": answered, "messages": n}))
    await server.close()

asyncio.run(main(int(sys.argv[1]), sys.argv[2]))
"""


def run(root: Path, messages: int, semantic: str) -> dict[str, float]:
    env = {**os.environ, "PYTHONPATH": str(root)}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(messages), semantic],
        cwd=root,
        env=env,
        check=True,
        capture_output=True,
        text=True,
        timeout=900,
    ).stdout
    return dict(json.loads(out.strip().splitlines()[-1]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--messages", type=int, default=6400)
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--semantic", choices=["auto", "none", "e5"], default="auto")
    ap.add_argument("--also", action="append", default=[], metavar="DIR")
    args = ap.parse_args()
    roots = [ROOT, *map(Path, args.also)]
    results: dict[Path, list[dict[str, float]]] = {r: [] for r in roots}
    for _ in range(args.rounds):  # alternate, so a drift of the machine hits every tree alike
        for root in roots:
            results[root].append(run(root, args.messages, args.semantic))
    print(f"{args.messages} messages per round, {args.rounds} rounds, semantic={args.semantic}\n")
    print("| tree | CPU ms per message (each round) | median | answered |")
    print("| --- | --- | --- | --- |")
    for root, rows in results.items():
        cpus = [r["cpu_ms"] for r in rows]
        print(
            f"| {root} | {', '.join(f'{c:.3f}' for c in cpus)} | {statistics.median(cpus):.3f} | "
            f"{rows[-1]['answered']}/{rows[-1]['messages']:.0f} |"
        )
    print(json.dumps({str(r): [round(x["cpu_ms"], 3) for x in rows] for r, rows in results.items()}))


if __name__ == "__main__":
    main()
