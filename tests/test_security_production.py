"""Issue #23 finding 8 and issue #19: production settings refuse the shipped secret key and
the demo passwords, with one clear line and exit 2 (no traceback); a safe one starts."""

from __future__ import annotations

import asyncio
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest

from bot.core.settings import ROOT

GOOD_SECRET = "k" * 48


def _env(tmp_path: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("BOT_")}
    env.update(
        PYTHONPATH=str(ROOT),
        BOT_DATABASE_URL=f"sqlite://{tmp_path / 'prod.sqlite3'}",
        BOT_JIEBA_CACHE_DIR=str(tmp_path),
        BOT_EVENT_LOOP="asyncio",
        BOT_OUTBOX_ENABLED="false",
        **extra,
    )
    return env


def _bot(tmp_path: Path, *args: str, timeout: float = 120, **env: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "bot", *args],
        cwd=tmp_path,
        env=_env(tmp_path, **env),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def _assert_refused(proc: subprocess.CompletedProcess[str], *words: str) -> None:
    assert proc.returncode == 2, (proc.returncode, proc.stderr[-2000:])
    lines = [x for x in proc.stderr.splitlines() if x.strip() and "absl" not in x and not x.startswith("WARNING")]
    assert len(lines) == 1 and lines[0].startswith("error:"), lines
    assert "Traceback" not in proc.stderr
    for w in words:
        assert w in lines[0], lines[0]


def test_default_secret_key_is_refused_in_production(tmp_path: Path) -> None:
    _assert_refused(_bot(tmp_path, "run", BOT_ENV="production"), "BOT_SECRET_KEY")
    # an https public URL is production too
    _assert_refused(_bot(tmp_path, "run", BOT_PUBLIC_URL="https://csr.example"), "BOT_SECRET_KEY")
    _assert_refused(_bot(tmp_path, "run", BOT_ENV="production", BOT_SECRET_KEY="short"), "BOT_SECRET_KEY")


def test_demo_passwords_are_refused_in_production(tmp_path: Path) -> None:
    from bot.production import DEFAULT_DEMO_PASSWORD

    made = _bot(tmp_path, "staff", "add", "admin", "--role", "admin", "--password", DEFAULT_DEMO_PASSWORD)
    assert made.returncode == 0, made.stderr
    _assert_refused(_bot(tmp_path, "run", BOT_ENV="production", BOT_SECRET_KEY=GOOD_SECRET), "admin", "demo password")
    # `make demo` itself refuses production settings
    _assert_refused(_bot(tmp_path, "demo", BOT_ENV="production", BOT_SECRET_KEY=GOOD_SECRET), "demo")
    # a bad proxy list is a clear error as well
    _assert_refused(_bot(tmp_path, "run", BOT_TRUSTED_PROXIES="nginx"), "BOT_TRUSTED_PROXIES")


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.mark.timeout(180)
async def test_safe_production_settings_start(tmp_path: Path) -> None:
    made = _bot(tmp_path, "staff", "add", "admin", "--role", "admin", "--password", "a-real-admin-password-9")
    assert made.returncode == 0, made.stderr
    port = _free_port()
    proc = subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--port", str(port)],
        cwd=tmp_path,
        env=_env(tmp_path, BOT_ENV="production", BOT_SECRET_KEY=GOOD_SECRET),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        deadline = time.monotonic() + 150
        while True:
            assert proc.poll() is None, proc.stderr.read() if proc.stderr else ""
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=2) as resp:
                    assert resp.status == 200
                    break
            except OSError:
                if time.monotonic() > deadline:
                    raise
                await asyncio.sleep(0.5)
    finally:
        proc.terminate()
        proc.wait(timeout=30)
