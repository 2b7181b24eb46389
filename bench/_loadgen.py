"""HTTP load generators shared by the benchmarks (loopback only), and /proc accounting.

* :func:`closed_loop`: ``concurrency`` clients, each sending its next request when the last
  one is answered (measures saturation throughput).
* :func:`open_loop`: requests arrive at a constant rate (Poisson or fixed interval) whatever
  the server does, each in its own task, on a connection pool without a limit (measures
  latency under a given load). A generator that falls behind its schedule says so: every
  request sent more than ``late_ms`` after its scheduled time is counted as *late*, and
  latencies are measured from the scheduled time, so lag is never hidden.
* :class:`CpuMeter`: utime + stime of a server process and its descendants from
  ``/proc/PID/stat``, read before and after the measured window; divided by the answered
  requests this is the CPU per answered request, in ms of one core.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import socket
import statistics
import sys
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from typing import Any

import aiohttp

CLK_TCK = os.sysconf("SC_CLK_TCK")


# --- /proc accounting (Linux) -------------------------------------------------------------------------------------
def _stat_fields(pid: int) -> list[str]:
    with open(f"/proc/{pid}/stat") as f:
        return f.read().rsplit(")", 1)[1].split()  # fields from the 3rd (state) on


def proc_ticks(pid: int) -> int:
    """utime + stime of one process, in clock ticks (0 if it is gone)."""
    try:
        fields = _stat_fields(pid)
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def descendants(pid: int) -> list[int]:
    """``pid`` and every live process below it."""
    parent: dict[int, int] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            parent[int(entry)] = int(_stat_fields(int(entry))[1])
        except (OSError, IndexError, ValueError):
            continue
    out, frontier = [pid], [pid]
    while frontier:
        frontier = [p for p, pp in parent.items() if pp in frontier]
        out += frontier
    return out


def rss_kb(pid: int) -> int:
    """Resident set size (VmRSS) of one process in kB, 0 if it is gone."""
    try:
        with open(f"/proc/{pid}/status") as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    return 0


def cmdline(pid: int) -> str:
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as f:
            return f.read().replace(b"\0", b" ").decode(errors="replace").strip()
    except OSError:
        return ""


class CpuMeter:
    """CPU seconds used by ``pids`` (each with its descendants when ``tree``) between
    :meth:`start` and :meth:`stop`. A process that exits inside the window loses its last
    ticks (they go to its parent's cutime only when reaped): keep windows free of restarts."""

    def __init__(self, pids: int | Iterable[int] | None, *, tree: bool = True) -> None:
        self.roots = [] if pids is None else [pids] if isinstance(pids, int) else list(pids)
        self.tree = tree
        self.before: dict[int, int] = {}
        self.after: dict[int, int] = {}
        self.wall = 0.0
        self._t0 = 0.0

        self._pids: list[int] | None = None

    def _pid_list(self) -> list[int]:
        pids: list[int] = []
        for root in self.roots:
            pids += descendants(root) if self.tree else [root]
        return pids

    def prepare(self) -> None:
        """Find the processes now (scanning /proc takes milliseconds), so that :meth:`start`
        only reads their counters and does not stall a load generator's schedule."""
        self._pids = self._pid_list()

    def start(self) -> None:
        pids = self._pids if self._pids is not None else self._pid_list()
        self.before, self._t0 = {pid: proc_ticks(pid) for pid in pids}, time.perf_counter()

    def stop(self) -> None:
        pids = self._pid_list()  # processes started inside the window count from 0
        self.after, self.wall = {pid: proc_ticks(pid) for pid in pids}, time.perf_counter() - self._t0

    def per_pid(self) -> dict[int, float]:
        """CPU seconds of each process seen at the end of the window."""
        return {pid: (t - self.before.get(pid, 0)) / CLK_TCK for pid, t in self.after.items()}

    @property
    def seconds(self) -> float | None:
        return sum(self.per_pid().values()) if self.roots else None

    @property
    def share(self) -> float | None:
        """Average share of one core over the window (1.0 = one core busy)."""
        s = self.seconds
        return s / self.wall if s is not None and self.wall else None


async def settle(
    pid: int | None,
    *,
    below: float = 0.05,
    quiet_for: float = 2.0,
    window: float = 0.25,
    timeout: float = 300.0,
    label: str = "",
) -> float:
    """Wait until the server (``pid`` and its children) has used less than ``below`` of a core
    for ``quiet_for`` s in a row, at most ``timeout`` s; returns the seconds waited.

    A freshly started EveryCSR keeps working after its port opens: it embeds the knowledge
    base's questions for the semantic stage and then recalibrates its thresholds (tens of
    seconds on the sample knowledge base, minutes on 10,000 items). A load measured meanwhile
    shares the CPU with that work. Between two phases this also lets a write backlog drain."""
    if pid is None:
        return 0.0
    t0 = time.perf_counter()
    quiet_since: float | None = None
    meter = CpuMeter(pid)
    while time.perf_counter() - t0 < timeout:
        meter.start()
        await asyncio.sleep(window)
        meter.stop()
        now = time.perf_counter()
        if (meter.share or 0.0) < below:
            quiet_since = quiet_since or now - window
            if now - quiet_since >= quiet_for:
                break
        else:
            quiet_since = None
    waited = time.perf_counter() - t0
    if label:
        state = "settled" if waited < timeout else "still busy (timed out)"
        print(f"[{label}: server {state} after {waited:.1f} s]", file=sys.stderr, flush=True)
    return waited


def _ms_per(cpu_s: float | None, n: int) -> float | None:
    return 1000 * cpu_s / n if cpu_s is not None and n else None


def _fmt(x: float | None, spec: str = ".2f") -> str:
    return "—" if x is None else format(x, spec)


def pct(data: list[float], p: float) -> float:
    """The p-th percentile of ``data`` (nearest rank on the sorted list, as the rows always did)."""
    if not data:
        return 0.0
    s = sorted(data)
    return s[min(len(s) - 1, int(p / 100 * len(s)))]


# --- closed loop -------------------------------------------------------------------------------------------------
@dataclass
class LoadResult:
    requests: int
    errors: int
    seconds: float
    latencies_ms: list[float]
    cpu_s: float | None = None  # server CPU seconds in the measured window (all its processes)
    cpu_share: float | None = None  # the same as a share of one core

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def answered(self) -> int:
        return self.requests - self.errors

    @property
    def cpu_ms_per_answered(self) -> float | None:
        """Server CPU per answered request, in ms of one core."""
        return _ms_per(self.cpu_s, self.answered)

    def pct(self, p: float) -> float:
        return pct(self.latencies_ms, p)

    def row(self, name: str) -> str:
        return (
            f"| {name} | {self.requests} | {self.errors} | {self.rps:,.0f} | {self.pct(50):.2f} | "
            f"{self.pct(99):.2f} | {statistics.mean(self.latencies_ms) if self.latencies_ms else 0:.2f} | "
            f"{_fmt(self.cpu_ms_per_answered, '.3f')} |"
        )


ROW_HEADER = (
    "| server | requests | errors | req/s | p50 ms | p99 ms | mean ms | CPU ms/answered |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- |"
)


async def closed_loop(
    url: str,
    make_body: Callable[[int, int], dict[str, Any]],
    *,
    concurrency: int,
    duration: float,
    warmup: float = 1.0,
    max_requests: int = 200_000,
    cpu_pid: int | None = None,
) -> LoadResult:
    """``concurrency`` clients each sending one request after another for ``duration`` s.
    With ``cpu_pid``, the server's CPU (that process and its children) from the end of the
    warm-up to the last answer goes into the result."""
    latencies: list[float] = []
    errors = 0
    count = 0
    meter = CpuMeter(cpu_pid)
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

        meter.prepare()

        async def cpu_window_start() -> None:
            await asyncio.sleep(max(0.0, measure_from - time.perf_counter()))
            meter.start()

        await asyncio.gather(cpu_window_start(), *(client(i) for i in range(concurrency)))
        meter.stop()
        elapsed = min(time.perf_counter(), stop_at) - measure_from
    return LoadResult(count, errors, elapsed, latencies, meter.seconds, meter.share)


# --- open loop ---------------------------------------------------------------------------------------------------
class _Conn(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection of :class:`RawHttp`: one request at a time."""

    def __init__(self) -> None:
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.waiter: asyncio.Future[tuple[int, bytes, bool]] | None = None
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def data_received(self, data: bytes) -> None:
        self.buf += data
        self._parse()

    def _parse(self) -> None:
        waiter = self.waiter
        if waiter is None or waiter.done():
            return
        end = self.buf.find(b"\r\n\r\n")
        if end < 0:
            return
        head = bytes(self.buf[:end]).lower()
        # HTTP/1.0 (wsgiref) closes after each response unless it says otherwise
        keep = b"\r\nconnection: close" not in head and (
            not head.startswith(b"http/1.0") or b"\r\nconnection: keep-alive" in head
        )
        at = head.find(b"\r\ncontent-length:")
        if at < 0:  # the body runs to the end of the connection
            if not self.closed:
                return
            total = len(self.buf)
            keep = False
        else:
            stop = head.find(b"\r\n", at + 2)
            total = end + 4 + int(head[at + 17 : stop if stop > 0 else len(head)])
            if len(self.buf) < total:
                return
        body = bytes(self.buf[end + 4 : total])
        del self.buf[:total]
        waiter.set_result((int(head[9:12]), body, keep))

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._parse()
        if self.waiter is not None and not self.waiter.done():
            self.waiter.set_exception(ConnectionError("connection closed"))


class RawHttp:
    """A lean HTTP/1.1 client for the open loop (~5x less CPU per request than aiohttp's, so the
    generator keeps its schedule at thousands of requests a second on a shared 2-core box).

    Keep-alive connections are reused when idle and opened when none is: no limit, so the
    number of connections follows the requests in flight, as independent clients would.
    A response without Content-Length ends with its connection (HTTP/1.0, wsgiref)."""

    def __init__(self, host: str, port: int, *, timeout: float = 30.0) -> None:
        self.host, self.port, self.timeout = host, port, timeout
        self.idle: list[_Conn] = []
        self.opened = 0
        self._all: list[_Conn] = []

    async def _connect(self) -> _Conn:
        loop = asyncio.get_running_loop()
        _, conn = await loop.create_connection(_Conn, self.host, self.port)
        self.opened += 1
        self._all.append(conn)
        return conn

    async def request(
        self, method: str, target: str, body: bytes = b"", content_type: str = "application/json"
    ) -> tuple[int, bytes]:
        head = (
            f"{method} {target} HTTP/1.1\r\nHost: {self.host}:{self.port}\r\nContent-Type: {content_type}\r\n"
            f"Content-Length: {len(body)}\r\n\r\n"
        ).encode("latin-1")
        for attempt in (0, 1):
            reused = bool(self.idle)
            conn = self.idle.pop() if reused else await self._connect()
            if conn.closed:
                continue
            conn.waiter = asyncio.get_running_loop().create_future()
            assert conn.transport is not None
            conn.transport.write(head + body)
            try:
                status, data, keep = await asyncio.wait_for(conn.waiter, self.timeout)
            except ConnectionError:
                if reused and attempt == 0 and not conn.buf:  # the server closed an idle connection
                    continue
                raise
            except asyncio.TimeoutError:
                conn.transport.close()
                raise
            if keep and not conn.closed:
                self.idle.append(conn)
            else:
                conn.transport.close()
            return status, data
        raise ConnectionError("no connection")

    async def post_json(self, target: str, payload: Any) -> tuple[int, bytes]:
        return await self.request("POST", target, json.dumps(payload).encode())

    def close(self) -> None:
        for conn in self._all:
            if conn.transport is not None and not conn.closed:
                conn.transport.close()


Send = Callable[[RawHttp, int], Awaitable[bool]]


@dataclass
class OpenLoopResult:
    target_rate: float
    duration: float
    sent: int = 0  # measured requests sent (scheduled inside the window)
    errors: int = 0  # non-200, wrong answer, connection error or time-out
    unfinished: int = 0  # no answer by the end of the drain (also counted as errors)
    late: int = 0  # sent more than late_ms after their scheduled time
    late_ms: float = 5.0
    send_span: float = 0.0  # first to last measured send, seconds
    latencies_ms: list[float] = field(default_factory=list)  # scheduled time -> answer
    lags_ms: list[float] = field(default_factory=list)  # scheduled time -> sent
    in_flight_max: int = 0
    connections: int = 0  # TCP connections the generator opened
    cpu_s: float | None = None
    cpu_share: float | None = None
    gen_cpu_share: float | None = None  # the load generator's own process

    @property
    def achieved_rate(self) -> float:
        """Requests actually sent per second (the offered load, whatever the server did)."""
        return self.sent / max(self.duration, self.send_span) if self.sent else 0.0

    @property
    def answered(self) -> int:
        return self.sent - self.errors

    @property
    def cpu_ms_per_answered(self) -> float | None:
        return _ms_per(self.cpu_s, self.answered)

    def pct(self, p: float) -> float:
        return pct(self.latencies_ms, p)

    @property
    def max_ms(self) -> float:
        return max(self.latencies_ms, default=0.0)

    @property
    def trustworthy(self) -> bool:
        """False when the generator fell behind: more than 1 % of the requests late, or the
        sends of the window spilling past its end. (Poisson arrivals vary: ``sent`` differs from
        rate × duration by a few √(rate × duration) even when the generator keeps up.)"""
        return self.late <= 0.01 * max(1, self.sent) and self.send_span <= self.duration + 0.1

    def row(self, name: str) -> str:
        flag = "" if self.trustworthy else " ⚠ generator behind"
        return (
            f"| {name} | {self.target_rate:,.0f} | {self.achieved_rate:,.0f} | {self.sent} | {self.errors} | "
            f"{self.late}{flag} | {self.pct(50):.2f} | {self.pct(95):.2f} | {self.pct(99):.2f} | {self.max_ms:.2f} | "
            f"{_fmt(self.cpu_ms_per_answered, '.3f')} | {_fmt(self.cpu_share and 100 * self.cpu_share, '.0f')} | "
            f"{_fmt(self.gen_cpu_share and 100 * self.gen_cpu_share, '.0f')} |"
        )

    def as_dict(self) -> dict[str, float | int | bool]:
        return {
            "target_rate": round(self.target_rate, 1),
            "achieved_rate": round(self.achieved_rate, 1),
            "sent": self.sent,
            "errors": self.errors,
            "unfinished": self.unfinished,
            "late": self.late,
            "lag_p99_ms": round(pct(self.lags_ms, 99), 2),
            "p50_ms": round(self.pct(50), 2),
            "p95_ms": round(self.pct(95), 2),
            "p99_ms": round(self.pct(99), 2),
            "max_ms": round(self.max_ms, 2),
            "cpu_ms_per_answered": round(self.cpu_ms_per_answered or 0.0, 3),
            "server_cpu_share": round(self.cpu_share or 0.0, 3),
            "trustworthy": self.trustworthy,
        }


OPEN_HEADER = (
    "| server | target req/s | achieved req/s | sent | errors | late | p50 ms | p95 ms | p99 ms | max ms "
    "| CPU ms/answered | server CPU % | generator CPU % |\n"
    "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |"
)


async def open_loop(
    send: Send,
    *,
    port: int,
    host: str = "127.0.0.1",
    rate: float,
    duration: float,
    warmup: float = 1.0,
    arrivals: str = "poisson",
    seed: int = 1,
    late_ms: float = 5.0,
    max_in_flight: int = 8192,
    timeout: float = 30.0,
    cpu_pid: int | None = None,
    result: OpenLoopResult | None = None,
) -> OpenLoopResult:
    """Send request ``i`` (``await send(client, i)`` -> ok, ``client`` a :class:`RawHttp` to
    ``host:port``) at the i-th arrival of a constant-rate process: Poisson (exponential gaps) or
    ``fixed`` intervals of 1/rate.

    Every request runs in its own task on a connection pool without a limit, so a slow
    server does not slow the arrivals. The first ``warmup`` s (same rate) are not measured.
    Latency is from the *scheduled* arrival to the answer. Requests the generator sent more
    than ``late_ms`` after schedule are counted (``late``); ``max_in_flight`` is only a safety
    bound (fds): reaching it delays sends, which then show up as late, never silently.
    After the last arrival the answers are awaited for up to ``timeout`` s; those still
    missing are ``unfinished`` (and errors). The request count is bounded by
    rate × (warmup + duration). ``result``: an empty result to fill, for a caller that
    watches the run while it goes (a soak's samples)."""
    if rate <= 0:
        raise ValueError("rate must be > 0")
    rnd = random.Random(seed)
    res = result or OpenLoopResult(target_rate=rate, duration=duration, late_ms=late_ms)
    meter = CpuMeter(cpu_pid)
    tasks: set[asyncio.Task[None]] = set()
    gap = (lambda: rnd.expovariate(rate)) if arrivals == "poisson" else (lambda: 1.0 / rate)
    client = RawHttp(host, port, timeout=timeout)
    try:

        async def one(i: int, due: float, measured: bool) -> None:
            try:
                ok = await send(client, i)
            except (OSError, asyncio.TimeoutError, ValueError):  # ConnectionError is an OSError
                ok = False
            if measured:
                res.latencies_ms.append((time.perf_counter() - due) * 1000)
                res.errors += not ok

        meter.prepare()
        start = time.perf_counter() + 0.01
        measure_from = start + warmup
        end = measure_from + duration
        due = start
        i = 0
        first_send = last_send = 0.0
        cpu_started = False
        gen0 = 0.0
        while due < end:
            now = time.perf_counter()
            if due > now:
                await asyncio.sleep(due - now)
                now = time.perf_counter()
            while due <= now and due < end:  # everything due by now, each in its own task
                while len(tasks) >= max_in_flight:
                    await asyncio.wait(tasks, return_when=asyncio.FIRST_COMPLETED)
                    now = time.perf_counter()
                measured = due >= measure_from
                if measured:
                    if not cpu_started:
                        meter.start()
                        gen0 = time.process_time()
                        cpu_started, first_send = True, now
                    lag = (now - due) * 1000
                    res.lags_ms.append(lag)
                    res.late += lag > late_ms
                    res.sent += 1
                    last_send = now
                task = asyncio.create_task(one(i, due, measured))
                tasks.add(task)
                task.add_done_callback(tasks.discard)
                res.in_flight_max = max(res.in_flight_max, len(tasks))
                i += 1
                due += gap()
        if tasks:
            done, pending = await asyncio.wait(set(tasks), timeout=timeout + 5)
            for task in pending:
                task.cancel()
            res.unfinished = len(pending)
            res.errors += len(pending)
            if pending:
                await asyncio.gather(*pending, return_exceptions=True)
        if cpu_started:
            meter.stop()
            res.cpu_s, res.cpu_share = meter.seconds, meter.share
            res.gen_cpu_share = (time.process_time() - gen0) / meter.wall if meter.wall else None
        res.send_span = last_send - first_send
        res.connections = client.opened
    finally:
        client.close()
    return res


def half_rate(closed_rps: float) -> float:
    """``--open-loop half``: half the saturation rate measured closed-loop in the same run."""
    return max(1.0, closed_rps / 2)


def parse_open_loop(value: str | None) -> str | float | None:
    """``--open-loop RATE|half`` → None (closed loop only), "half" or a rate in requests/s."""
    if value is None:
        return None
    if value == "half":
        return "half"
    rate = float(value)
    if rate <= 0:
        raise ValueError("--open-loop takes a positive rate or 'half'")
    return rate


# --- servers ------------------------------------------------------------------------------------------------------
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

    async def handle(self, incoming: Any, *, wait: float | None = None) -> Any:
        """The :class:`bot.core.inbound.MessageHandler` side (the WeChat and Telegram channels)."""
        from bot.core.inbound import Handled

        return Handled(await self.process(incoming))
