"""``python -m bot run --workers N``: N aiohttp processes on one port, plus the queue worker.

Each web process opens its own listening socket with ``SO_REUSEPORT`` on the same
host:port, and the Linux kernel spreads incoming connections across them (no shared
accept lock, no master in the data path). With Redis configured, one more process runs
the durable outbox's taskiq worker (``python -m bot.workers queue``), and one computes the
dashboard's /metrics KPIs (``python -m bot.workers dashboard``: bot/dashboard/publisher.py), so
that no web process runs that pass. This supervisor restarts a process that dies and forwards
SIGTERM/SIGINT for a clean stop.

Several workers need the shared stores: ``BOT_REDIS_URL`` must be set (in-process dedup
keys and rate limits would be per process), and PostgreSQL is the database to use
(SQLite allows one writer at a time). Platforms without ``SO_REUSEPORT``: run N single
processes on different ports behind nginx instead (docs/operations.md).
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass, field

from typing import TYPE_CHECKING

from bot.core.app_keys import PROCESS_ROLE
from bot.core.logs import setup_logging
from bot.core.settings import ROOT, Settings, get_settings

if TYPE_CHECKING:  # imported where used: the dashboard process needs no web app
    from aiohttp import web

log = logging.getLogger(__name__)

RESTART_WINDOW_SECONDS = 60.0
MAX_RESTARTS_PER_WINDOW = 5


@dataclass
class Child:
    """One supervised process and its recent restarts."""

    name: str
    argv: list[str]
    env: dict[str, str]
    proc: subprocess.Popen[bytes] | None = None
    restarts: list[float] = field(default_factory=list)

    def start(self) -> None:
        self.proc = subprocess.Popen(self.argv, env=self.env, cwd=ROOT)

    def may_restart(self) -> bool:
        now = time.monotonic()
        self.restarts = [t for t in self.restarts if now - t < RESTART_WINDOW_SECONDS]
        if len(self.restarts) >= MAX_RESTARTS_PER_WINDOW:
            return False
        self.restarts.append(now)
        return True


def check_config(settings: Settings, workers: int) -> str | None:
    """Why this configuration cannot run several workers, or None."""
    if workers < 1:
        return "--workers must be at least 1"
    if workers > 1 and not settings.redis_url:
        return (
            "several workers share dedup keys, conversation state and rate limits through Redis: "
            "set BOT_REDIS_URL (see docs/operations.md)"
        )
    if workers > 1 and settings.is_sqlite:
        return (
            "several workers need PostgreSQL (SQLite allows one writer at a time): "
            "set BOT_DATABASE_URL=postgres://... (see docs/operations.md)"
        )
    if not hasattr(socket, "SO_REUSEPORT"):
        return "this platform has no SO_REUSEPORT: run single workers on separate ports behind nginx"
    return None


def build_children(settings: Settings, workers: int) -> list[Child]:
    env = {**os.environ, "BOT_HOST": settings.host, "BOT_PORT": str(settings.port)}
    children = [Child(f"web-{i + 1}", [sys.executable, "-m", "bot.workers", "web"], env) for i in range(workers)]
    if settings.redis_url and settings.outbox_enabled:
        children.append(Child("outbox-queue", [sys.executable, "-m", "bot.workers", "queue"], env))
    if settings.dashboard_kpi_child:  # one KPI pass for the deployment, never in a web process
        children.append(Child("dashboard", [sys.executable, "-m", "bot.workers", "dashboard"], env))
    return children


def supervise(children: list[Child]) -> int:
    """Run until SIGTERM/SIGINT or until a process keeps dying; returns the exit code."""
    stopping = False
    wake = threading.Event()  # set by a signal: the loop reacts at once, not at its next tick

    def stop(signum: int, frame: object) -> None:
        nonlocal stopping
        stopping = True
        wake.set()

    old = {sig: signal.signal(sig, stop) for sig in (signal.SIGTERM, signal.SIGINT)}
    code = 0
    try:
        for child in children:
            child.start()
        print(
            f"EveryCSR: {len(children)} processes started "
            f"({', '.join(f'{c.name} pid {c.proc.pid}' for c in children if c.proc)})",
            flush=True,
        )
        while not stopping:
            wake.wait(0.5)
            for child in children:
                if child.proc is None or child.proc.poll() is None:
                    continue
                rc = child.proc.returncode
                if not child.may_restart():
                    print(f"EveryCSR: {child.name} keeps exiting (last code {rc}); stopping", file=sys.stderr)
                    stopping, code = True, 1
                    break
                print(f"EveryCSR: {child.name} exited with {rc}; restarting", file=sys.stderr, flush=True)
                child.start()
    finally:
        for child in children:
            if child.proc and child.proc.poll() is None:
                child.proc.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 15
        for child in children:
            if child.proc is None:
                continue
            try:
                child.proc.wait(max(0.1, deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                child.proc.kill()
                child.proc.wait()
        for sig, handler in old.items():
            signal.signal(sig, handler)
    return code


def run_workers(settings: Settings, workers: int) -> int:
    """Entry of ``python -m bot run --workers N``."""
    problem = check_config(settings, workers)
    if problem:
        print(f"error: {problem}", file=sys.stderr)
        return 2
    return supervise(build_children(settings, workers))


def serve_web(settings: Settings) -> None:
    """One web process: the app on the shared port, handing outbox rows to the queue."""
    from bot.app import create_app
    from bot.core.event_loop import run_web

    app = create_app(settings)
    app[PROCESS_ROLE] = "web"
    run_web(app, settings, reuse_port=True)


async def run_queue_worker(app: web.Application, *, stop: asyncio.Event | None = None) -> None:
    """A queue-worker process: the app's services and channel senders, no HTTP listener."""
    from aiohttp import web

    app[PROCESS_ROLE] = "worker"
    runner = web.AppRunner(app, handle_signals=False)
    await runner.setup()  # runs the cleanup contexts: database, stores, senders, queue
    log.info("outbox queue worker started (pid %s)", os.getpid())
    try:
        await (stop or asyncio.Event()).wait()
    finally:
        await runner.cleanup()


def serve_queue(settings: Settings, app: web.Application | None = None) -> None:
    """One queue worker until SIGTERM/SIGINT (``app``: one assembled with extra parts)."""
    if not settings.redis_url:
        raise SystemExit("BOT_REDIS_URL is not set: the embedded in-process outbox needs no queue worker")

    async def run() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        if app is None:
            from bot.app import create_app

            await run_queue_worker(create_app(settings), stop=stop)
        else:
            await run_queue_worker(app, stop=stop)

    asyncio.run(run())


USAGE = (
    "usage: python -m bot.workers web|queue|dashboard [--once | --settings-stdin]\n"
    "  (web and queue are started by `python -m bot run --workers N`; dashboard is the one process\n"
    "  computing the /metrics KPIs: started by the supervisor or a single `run`, or run it yourself)"
)


def serve_dashboard(settings: Settings, options: list[str]) -> int:
    """The KPI process (bot/dashboard/publisher.py); ``--once``: one pass printed as JSON;
    ``--settings-stdin``: started by a web process, which sends its settings on stdin."""
    from bot.dashboard import publisher
    from bot.dashboard.snapshot import dumps

    if options == ["--once"]:
        print(dumps(asyncio.run(publisher.once(settings))))
        return 0
    if options == ["--settings-stdin"]:
        settings = publisher.settings_from_parent(sys.stdin.readline())
        setup_logging(settings)
        publisher.serve(settings, parent=True)
        return 0
    publisher.serve(settings)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m bot.workers web|queue|dashboard``: one child of the supervisor."""
    args = sys.argv[1:] if argv is None else argv
    if not args or args[0] not in ("web", "queue", "dashboard") or (args[0] != "dashboard" and len(args) > 1):
        print(USAGE, file=sys.stderr)
        return 2
    if args[0] == "dashboard" and args[1:] not in ([], ["--once"], ["--settings-stdin"]):
        print(USAGE, file=sys.stderr)
        return 2
    settings = get_settings()
    setup_logging(settings)
    if args[0] == "dashboard":
        return serve_dashboard(settings, args[1:])
    (serve_web if args == ["web"] else serve_queue)(settings)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
