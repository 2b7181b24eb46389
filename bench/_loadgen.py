"""A small closed-loop HTTP load generator shared by the benchmarks (loopback only)."""

from __future__ import annotations

import asyncio
import socket
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import aiohttp


@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    def pct(self, p: float) -> float:
        if not self.latencies_ms:
            return 0.0
        data = sorted(self.latencies_ms)
        return data[min(len(data) - 1, int(p / 100 * len(data)))]

    def row(self, name: str) -> str:
        return (
            f"| {name} | {self.requests} | {self.errors} | {self.rps:,.0f} | {self.pct(50):.2f} | "
            f"{self.pct(99):.2f} | {statistics.mean(self.latencies_ms) if self.latencies_ms else 0:.2f} |"
        )


async def closed_loop(
    url: str,
    make_body: Callable[[int, int], dict[str, Any]],
    *,
    concurrency: int,
    duration: float,
    warmup: float = 1.0,
    max_requests: int = 200_000,
) -> LoadResult:
    """``concurrency`` clients each sending one request after another for ``duration`` s."""
    latencies: list[float] = []
    errors = 0
    count = 0
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as session:
        start = time.perf_counter()
        measure_from = start + warmup
        stop_at = measure_from + duration

        async def client(cid: int) -> None:
            nonlocal errors, count
            seq = 0
            while time.perf_counter() < stop_at and count < max_requests:
                seq += 1
                body = make_body(cid, seq)
                t0 = time.perf_counter()
                try:
                    async with session.post(url, json=body) as resp:
                        await resp.read()
                        ok = resp.status == 200
                except aiohttp.ClientError:
                    ok = False
                t1 = time.perf_counter()
                if t0 >= measure_from:
                    count += 1
                    latencies.append((t1 - t0) * 1000)
                    if not ok:
                        errors += 1

        await asyncio.gather(*(client(i) for i in range(concurrency)))
        elapsed = min(time.perf_counter(), stop_at) - measure_from
    return LoadResult(count, errors, elapsed, latencies)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def wait_up(port: int, timeout: float = 90) -> None:
    """Until a server accepts connections on 127.0.0.1:``port``."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        try:
            _, w = await asyncio.open_connection("127.0.0.1", port)
            w.close()
            return
        except OSError:
            await asyncio.sleep(0.2)
    raise RuntimeError(f"server on {port} did not start")


class FixedPipeline:
    """Stands in for EveryCSR's pipeline: one fixed reply, to measure the layers in front of it."""

    def __init__(self, text: str) -> None:
        self.text = text

    async def process(self, incoming: Any) -> list[Any]:
        from bot.core.messages import Reply

        return [Reply(text=self.text)]
