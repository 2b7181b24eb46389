"""Throw-away Redis and PostgreSQL servers for the production-mode tests.

Session-scoped: one redis-server and one PostgreSQL cluster per test run, on 127.0.0.1
and free ports, from the Debian packages (``redis-server``, ``postgresql``). Tests that
need them skip with a clear reason only when the binaries are absent. Each test gets
its own Redis database number (``fresh_redis_url``) and its own PostgreSQL database
(``fresh_postgres_url``), so tests never see each other's data.

``BOT_TEST_REDIS_URL`` / ``BOT_TEST_POSTGRES_URL`` point the tests at existing servers
instead (CI with service containers).
"""

from __future__ import annotations

import glob
import itertools
import os
import pwd
import re
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

REDIS_DATABASES = 64


def _missing(reason: str) -> None:
    """Skip, or fail under ``make prod-test`` (BOT_REQUIRE_SERVICES=1), where the servers are the point."""
    if os.environ.get("BOT_REQUIRE_SERVICES"):
        pytest.fail(reason)
    pytest.skip(reason)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait_port(port: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listens on 127.0.0.1:{port} after {timeout}s")


def _as_service_user() -> list[str]:
    """initdb/postgres refuse to run as root: run them as the postgres (or nobody) user."""
    if os.geteuid() != 0:
        return []
    for user in ("postgres", "nobody"):
        try:
            pwd.getpwnam(user)
        except KeyError:
            continue
        return ["runuser", "-u", user, "--"]
    raise RuntimeError("running as root and neither a 'postgres' nor a 'nobody' user exists")


def _service_uid() -> int | None:
    if os.geteuid() != 0:
        return None
    for user in ("postgres", "nobody"):
        try:
            return pwd.getpwnam(user).pw_uid
        except KeyError:
            continue
    return None


@dataclass
class RedisServer:
    """One redis-server process (no persistence) that tests may stop and restart."""

    port: int = field(default_factory=free_port)
    workdir: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="everycsr-redis-")))
    proc: subprocess.Popen[bytes] | None = None

    @property
    def url(self) -> str:
        return f"redis://127.0.0.1:{self.port}"

    def start(self) -> None:
        binary = shutil.which("redis-server")
        if not binary:
            raise FileNotFoundError("redis-server")
        self.proc = subprocess.Popen(
            [
                binary,
                "--port",
                str(self.port),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--databases",
                str(REDIS_DATABASES),
                "--dir",
                str(self.workdir),
                "--protected-mode",
                "no",
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        _wait_port(self.port, 10)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()
        self.proc = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self.workdir, ignore_errors=True)


def postgres_bindir() -> Path | None:
    dirs = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(p.split("/")[-2]))
    for d in reversed(dirs):
        if os.path.exists(os.path.join(d, "initdb")) and os.path.exists(os.path.join(d, "pg_ctl")):
            return Path(d)
    return None


@dataclass
class PostgresCluster:
    """A PostgreSQL cluster in a temp dir, trust auth on 127.0.0.1, fsync off (tests only)."""

    bindir: Path
    port: int = field(default_factory=free_port)
    root: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="everycsr-pg-")))

    @property
    def datadir(self) -> Path:
        return self.root / "data"

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def _run(self, *args: str, timeout: float = 60) -> None:
        subprocess.run(
            [*_as_service_user(), *args], check=True, timeout=timeout, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE
        )

    def init(self) -> None:
        uid = _service_uid()
        if uid is not None:
            os.chown(self.root, uid, -1)
            self.root.chmod(0o700)
        self._run(
            str(self.bindir / "initdb"),
            "-D",
            str(self.datadir),
            "-U",
            "postgres",
            "-A",
            "trust",
            "-E",
            "UTF8",
            "--locale=C",
            "--no-sync",
        )

    def start(self) -> None:
        opts = (
            f"-h 127.0.0.1 -p {self.port} -k {self.root} -F -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=200"
        )
        self._run(
            str(self.bindir / "pg_ctl"),
            "-D",
            str(self.datadir),
            "-o",
            opts,
            "-w",
            "-t",
            "30",
            "-l",
            str(self.root / "server.log"),
            "start",
        )

    def stop(self, mode: str = "fast") -> None:
        self._run(str(self.bindir / "pg_ctl"), "-D", str(self.datadir), "-m", mode, "-w", "stop")

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        try:
            self.stop("immediate")
        except Exception:
            pass
        shutil.rmtree(self.root, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    if os.environ.get("BOT_TEST_REDIS_URL"):
        pytest.skip("BOT_TEST_REDIS_URL points at an external Redis: no local server to control")
    if not shutil.which("redis-server"):
        _missing("redis-server is not installed (apt-get install redis-server)")
    server = RedisServer()
    server.start()
    yield server
    server.cleanup()


@pytest.fixture(scope="session")
def redis_url(request: pytest.FixtureRequest) -> str:
    """Base URL of a running Redis (database 0)."""
    external = os.environ.get("BOT_TEST_REDIS_URL")
    if external:
        return external.rstrip("/")
    return request.getfixturevalue("redis_server").url


@pytest.fixture(scope="session")
def postgres_cluster() -> Iterator[PostgresCluster]:
    if os.environ.get("BOT_TEST_POSTGRES_URL"):
        pytest.skip("BOT_TEST_POSTGRES_URL points at an external PostgreSQL: no local cluster to control")
    bindir = postgres_bindir()
    if bindir is None:
        _missing("PostgreSQL server binaries not found under /usr/lib/postgresql/*/bin (apt-get install postgresql)")
    cluster = PostgresCluster(bindir)
    cluster.init()
    cluster.start()
    yield cluster
    cluster.cleanup()


@pytest.fixture(scope="session")
def postgres_url(request: pytest.FixtureRequest) -> str:
    """URL of the maintenance database of a running PostgreSQL cluster."""
    external = os.environ.get("BOT_TEST_POSTGRES_URL")
    if external:
        return external
    return request.getfixturevalue("postgres_cluster").url


_redis_db = itertools.count(1)


@pytest.fixture
def fresh_redis_url(redis_url: str) -> str:
    """A Redis URL on a database number no other test in this run uses (flushed first)."""
    import redis

    db = next(_redis_db) % REDIS_DATABASES or 1
    base = re.sub(r"/\d*$", "", redis_url)
    url = f"{base}/{db}"
    client = redis.Redis.from_url(url)
    client.flushdb()
    client.close()
    return url


async def create_database(postgres_url: str) -> str:
    """Create an empty database on the cluster; returns its URL."""
    import asyncpg

    name = f"t_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(postgres_url.replace("postgres://", "postgresql://", 1))
    try:
        await conn.execute(f'CREATE DATABASE "{name}"')
    finally:
        await conn.close()
    return postgres_url.rsplit("/", 1)[0] + "/" + name


@pytest.fixture
def fresh_postgres_url(postgres_url: str) -> str:
    """A new empty database (sync fixture, so async fixtures may request it by name too)."""
    import asyncio
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(1) as pool:
        return pool.submit(asyncio.run, create_database(postgres_url)).result(30)
