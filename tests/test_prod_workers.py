"""``python -m bot run --workers 2`` on PostgreSQL + Redis: one port, two web processes,
the queue worker; a killed web process is restarted while the other keeps serving."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import aiohttp
import pytest

from bot.core import storage
from bot.core.settings import ROOT
from bot.workers import check_config
from tests.conftest import make_settings
from tests.fixtures_services import free_port
from tests.community_helpers import IDENTITY_SECRET, as_member

pytestmark = pytest.mark.services


def children_of(pid: int) -> list[int]:
    out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(pid)], capture_output=True, text=True).stdout
    return [int(x) for x in out.split()]


def gone(pid: int) -> bool:
    """The process has exited (reaped, or a zombie whose parent has not reaped it yet)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] in ("Z", "X")


def cmdline(pid: int) -> str:
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
    except OSError:
        return ""


def test_several_workers_need_redis_and_postgres(tmp_path: Path) -> None:
    assert "BOT_REDIS_URL" in (check_config(make_settings(tmp_path), 2) or "")
    s = make_settings(tmp_path, redis_url="redis://127.0.0.1:1/0")
    assert "PostgreSQL" in (check_config(s, 2) or "")
    assert check_config(make_settings(tmp_path), 1) is None
    r = subprocess.run(
        [sys.executable, "-m", "bot", "run", "--workers", "2"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "BOT_REDIS_URL": "", "BOT_DATABASE_URL": "sqlite:///tmp/x"},
    )
    assert r.returncode == 2 and "BOT_REDIS_URL" in r.stderr and "Traceback" not in r.stderr


async def test_two_workers_share_one_port_and_survive_a_killed_worker(
    tmp_path: Path, fresh_postgres_url: str, fresh_redis_url: str
) -> None:
    await storage.open_db(fresh_postgres_url, create_schema=True)  # the operator's `migrate` step
    await storage.close_db()
    port = free_port()
    env = {
        **os.environ,
        "BOT_DATABASE_URL": fresh_postgres_url,
        "BOT_REDIS_URL": fresh_redis_url,
        "BOT_LOG_LEVEL": "WARNING",
        "BOT_JIEBA_CACHE_DIR": str(tmp_path),
        "BOT_WEBCHAT_IDENTITY_SECRET": IDENTITY_SECRET,
    }
    log = (tmp_path / "run.log").open("wb")
    parent = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--workers", "2", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as http:

            async def chat(i: int) -> int:
                # a new connection each time, so the kernel spreads them over the workers
                try:
                    async with aiohttp.ClientSession() as one:
                        async with one.post(
                            f"{base}/api/v1/chat", json={**as_member(f"w{i % 7}"), "text": "你好", "msg_id": f"w{i}"}
                        ) as r:
                            return r.status
                except aiohttp.ClientError:  # reset: it sat in the killed process' accept queue
                    return 0

            deadline = time.monotonic() + 60
            while True:
                try:
                    async with http.get(f"{base}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    pass
                assert time.monotonic() < deadline, (tmp_path / "run.log").read_text()[-2000:]
                await asyncio.sleep(0.2)
            kids = children_of(parent.pid)
            webs = [k for k in kids if "bot.workers web" in cmdline(k)]
            assert len(webs) == 2 and any("bot.workers queue" in cmdline(k) for k in kids)
            # wait until both web processes listen, then every request is answered
            await asyncio.sleep(0.5)
            assert await asyncio.gather(*[chat(i) for i in range(40)]) == [200] * 40

            os.kill(webs[0], signal.SIGKILL)
            # SIGKILL is asynchronous: until the process has exited, its listening socket
            # still takes a share of new connections (reset when it closes); on a busy
            # machine that can take a while, so wait for the exit (the process is gone or
            # a zombie: its sockets are closed)
            deadline = time.monotonic() + 30
            while not gone(webs[0]):
                assert time.monotonic() < deadline, "the killed worker did not exit"
                await asyncio.sleep(0.02)
            statuses = [await chat(100 + i) for i in range(10)]  # the other worker keeps serving
            assert statuses.count(200) >= 8, statuses  # at most a connection or two in the kill race

            async def restarted() -> bool:
                return len([k for k in children_of(parent.pid) if "bot.workers web" in cmdline(k)]) == 2

            deadline = time.monotonic() + 60
            while not await restarted():
                assert time.monotonic() < deadline, "the supervisor did not restart the killed worker"
                await asyncio.sleep(0.2)
    finally:
        parent.send_signal(signal.SIGTERM)
        try:
            rc = parent.wait(30)
        except subprocess.TimeoutExpired:
            parent.kill()
            rc = None
        log.close()
    assert rc == 0
    assert children_of(parent.pid) == []
    await storage.open_db(fresh_postgres_url)
    try:
        from bot.core.models import TranscriptEntry

        assert await TranscriptEntry.filter(direction="in").count() == 50 - (10 - statuses.count(200))
    finally:
        await storage.close_db()
