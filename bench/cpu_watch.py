"""CPU use of the processes behind a benchmark, to tell a CPU-bound server from a busy load generator.

Usage: python bench/cpu_watch.py PATTERN SECONDS   (e.g. `python bench/wechat.py & python
bench/cpu_watch.py wechat.py 40`, or `python bench/cpu_watch.py "bot" 60` for bench/pipeline.py,
bench/load.py and bench/memory.py). Every 1.5 s prints the CPU share of each process whose
command line contains PATTERN, read from /proc (Linux), tagged by its role: the load generator,
WeRoBot, EveryCSR's fixed-reply and full servers of bench/wechat.py, the bare echo and fixed-reply
servers of bench/pipeline.py, `python -m bot run` and its workers (``web``, ``queue``).

bench/pipeline.py and bench/wechat.py also print each server's CPU per answered request,
measured over the same window as the load (``CPU ms/answered``); this script is for watching
the shares while a benchmark runs.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time


def sample(pattern: str) -> dict[str, tuple[str, int]]:
    out = {}
    for pid in filter(str.isdigit, os.listdir("/proc")):
        try:
            cmdline = open(f"/proc/{pid}/cmdline", "rb").read().replace(b"\0", b" ").decode()
            if pattern not in cmdline or "cpu_watch.py" in cmdline:
                continue
            fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
            out[pid] = (cmdline, int(fields[11]) + int(fields[12]))  # utime + stime, in ticks
        except OSError:
            continue
    return out


def role(cmdline: str) -> str:
    if "werobot" in cmdline:
        return "werobot"
    if "--serve" in cmdline:  # bench/wechat.py's EveryCSR servers
        return "wechat-fixed" if "--fixed" in cmdline else "wechat-server"
    if "async def echo" in cmdline:  # bench/pipeline.py's servers are `python -c SCRIPT`
        return "echo"
    if "FixedPipeline" in cmdline:
        return "fixed"
    if "bot.workers web" in cmdline:
        return "web-worker"
    if "bot.workers queue" in cmdline:
        return "queue-worker"
    if "-m bot run" in cmdline:
        return "bot-run"
    if "-m bot " in cmdline:
        return "bot-cli"
    return "loadgen"


async def main() -> None:
    pattern, seconds = sys.argv[1], float(sys.argv[2])
    ticks = os.sysconf("SC_CLK_TCK")
    end = time.time() + seconds
    while time.time() < end:
        before = sample(pattern)
        await asyncio.sleep(1.5)
        after = sample(pattern)
        shares = [
            f"{role(cl)}[{pid}]={100 * (t - before[pid][1]) / ticks / 1.5:.0f}%"
            for pid, (cl, t) in after.items()
            if pid in before
        ]
        print(" ".join(sorted(shares)), flush=True)


if __name__ == "__main__":
    asyncio.run(main())
