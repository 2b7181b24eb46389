"""Mixed-traffic load test: 2 workers on PostgreSQL + Redis vs one process on SQLite.

Starts everything itself on 127.0.0.1 (a throw-away redis-server and PostgreSQL cluster
from the Debian packages, the loopback Telegram Bot API of tests/fakes), runs the real
service (`python -m bot run` and `python -m bot run --workers 2`), and sends the same
bounded mix to each: web chat JSON, WeChat safe-mode (AES) XML, Telegram webhook
updates and Twilio-signed SMS forms — with ~10% of the messages delivered twice, the
way providers retry. Then it counts end to end, from the database and the fake
Telegram API: every message processed exactly once (no loss, no duplicate), every
retry answered without acting twice, every Telegram update answered once.

    .venv/bin/python bench/load.py [--messages 1600] [--concurrency 32] [--workers 2]

Prints throughput, p50/p99 latency per configuration and the ratio.

Then, on the production configuration (``--workers N`` web workers, PostgreSQL + Redis), the
cost of one answered message per channel: the same service is sent ``--per-channel`` more
messages of one channel at a time (a quarter of them first contacts: each new sender sends
four), and between counters read before and after each phase (after the service's CPU has
gone quiet, so Telegram's answers through the outbox are in) it prints per message:

* CPU of the web workers and of the queue worker (utime + stime from /proc), and of
  PostgreSQL's and Redis's server processes, in ms of one core;
* PostgreSQL statements by kind from ``pg_stat_statements`` (the throw-away cluster is
  started with ``shared_preload_libraries=pg_stat_statements``; without the extension,
  transactions from ``pg_stat_database``), rows written (``tup_inserted`` + ``tup_updated`` +
  ``tup_deleted`` of the database), transactions and WAL bytes;
* Redis commands from ``INFO commandstats`` (by command);
* outbox rows created.

Background activity with no traffic (the queue worker's polling, autovacuum) is measured
over an idle window first and subtracted pro rata. ``--no-accounting`` skips this part.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import os
import random
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlencode

import aiohttp

ROOT = Path(__file__).resolve().parent.parent
# the repository root, not bench/, first: bench/ holds scripts named like packages
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != Path(__file__).resolve().parent]

from bot.web.chat_session import user_hash  # noqa: E402
from tests.fakes.telegram_api import FakeTelegram, message_update  # noqa: E402

BENCH_IDENTITY_SECRET = "bench-identity-secret"
from tests.fixtures_services import (  # noqa: E402
    PostgresCluster,
    RedisServer,
    create_database,
    free_port,
    postgres_bindir,
)
from bench._loadgen import CLK_TCK, cmdline, descendants, proc_ticks, settle  # noqa: E402

WECHAT_TOKEN, WECHAT_APPID = "benchtoken", "wxbench0000000001"
WECHAT_AES = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"  # 43 chars
SMS_TOKEN, TG_SECRET, PUBLIC = "bench-sms-token", "bench-secret", "http://bench.local"
QUESTIONS = [
    "我的流量还剩多少，怎么查？",
    "话费余额怎么查",
    "宽带坏了怎么办",
    "how do I check my data balance",
    "CXLL",
    "怎么办理5G套餐",
    "人工",
    "积分怎么兑换",
    "你好",
]


@dataclass
class Msg:
    channel: str
    key: str  # the channel's message id
    user: str
    text: str
    retry: bool = False

    @property
    def wire_id(self) -> str:
        """The message id as the channel puts it on the wire (and the transcript stores it)."""
        if self.channel == "telegram":
            from bot.channels.telegram.updates import msg_id

            return msg_id(int(self.key))
        if self.channel == "sms":
            return "SM" + self.key.replace("-", "").ljust(32, "0")
        if self.channel == "wechat":
            return str(10**11 + int(self.key.rsplit("-", 1)[1]))
        from bot.channels.webchat import scoped_msg_id
        from bot.web.chat_session import operator_external_id

        return scoped_msg_id(operator_external_id(self.user), self.key) or self.key  # ids are per account


@dataclass
class Result:
    name: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    empty_answers: int = 0
    checks: dict[str, int] = field(default_factory=dict)
    costs: list[Cost] = field(default_factory=list)  # per-message accounting (idle first)
    statements_on: bool = False

    def line(self) -> str:
        lat = sorted(self.latencies)
        p50 = statistics.median(lat) * 1000
        p99 = lat[int(len(lat) * 0.99) - 1] * 1000
        return (
            f"{self.name:<34} {len(lat) / self.seconds:8.1f} req/s   p50 {p50:7.1f} ms   p99 {p99:7.1f} ms   "
            f"statuses {self.statuses}   {self.checks}"
        )


def build_mix(n: int, seed: int = 7) -> list[Msg]:
    rnd = random.Random(seed)
    msgs: list[Msg] = []
    for i in range(n):
        channel = ("web", "wechat", "telegram", "sms")[i % 4]
        user = {
            "web": f"lw{i % 97}",
            "wechat": f"oBench{i % 89:05d}",
            "telegram": str(700000 + i),
            "sms": f"+861380013{i % 83:04d}",
        }[channel]
        msgs.append(
            Msg(channel, f"{channel}-{i}" if channel != "telegram" else str(100000 + i), user, rnd.choice(QUESTIONS))
        )
    retries = [Msg(m.channel, m.key, m.user, m.text, retry=True) for m in rnd.sample(msgs, n // 10)]
    mixed = msgs + retries
    rnd.shuffle(mixed)
    return mixed


class Sender:
    def __init__(self, base: str, http: aiohttp.ClientSession) -> None:
        from wechatpy.crypto import WeChatCrypto

        self.base, self.http = base, http
        self.deliveries = itertools.count()
        self.crypto = WeChatCrypto(WECHAT_TOKEN, WECHAT_AES, WECHAT_APPID)

    async def send(self, m: Msg) -> tuple[int, bool]:
        """Status and whether an answer came back (Telegram answers later, via the API)."""
        if m.channel == "web":
            async with self.http.post(
                f"{self.base}/api/v1/chat",
                json={
                    "user": m.user,
                    "user_hash": user_hash(BENCH_IDENTITY_SECRET, m.user),
                    "text": m.text,
                    "msg_id": m.key,
                },
            ) as r:
                data = await r.json(content_type=None)
                return r.status, bool(data.get("replies"))
        if m.channel == "telegram":
            update = message_update(int(m.key), int(m.user), m.text)
            async with self.http.post(
                f"{self.base}/telegram/webhook", json=update, headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
            ) as r:
                await r.read()
                return r.status, True
        if m.channel == "sms":
            form = {"MessageSid": m.wire_id, "From": m.user, "To": "+15550001111", "Body": m.text}
            from sms_gateway.twilio import signature

            sig = signature(SMS_TOKEN, PUBLIC + "/sms/inbound", list(form.items()))
            async with self.http.post(
                f"{self.base}/sms/inbound",
                data=urlencode(form),
                headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig},
            ) as r:
                return r.status, "<Message>" in await r.text()
        # WeChat safe mode: the XML arrives AES-encrypted with msg_signature
        from bot.channels.wechat.signature import sign

        # WeChat signs each delivery, a retry too, with a new nonce (a repeated one is a replay: 403)
        ts, nonce = str(int(time.time())), f"n{m.key}-{next(self.deliveries)}"
        plain = (
            f"<xml><ToUserName><![CDATA[gh_bench]]></ToUserName><FromUserName><![CDATA[{m.user}]]></FromUserName>"
            f"<CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{m.text}]]></Content><MsgId>{m.wire_id}</MsgId></xml>"
        )
        enc = self.crypto.encrypt_message(plain, nonce, ts)
        encrypt = enc.split("<Encrypt><![CDATA[")[1].split("]]>")[0]
        query = urlencode(
            {
                "signature": sign(WECHAT_TOKEN, ts, nonce),
                "timestamp": ts,
                "nonce": nonce,
                "encrypt_type": "aes",
                "msg_signature": sign(WECHAT_TOKEN, ts, nonce, encrypt),
            }
        )
        async with self.http.post(f"{self.base}/wechat?{query}", data=enc.encode()) as r:
            body = await r.text()
            return r.status, r.status == 200 and "<Encrypt>" in body


async def drive(base: str, mix: list[Msg], concurrency: int, res: Result) -> None:
    connector = aiohttp.TCPConnector(limit=concurrency, force_close=True)  # new connections: both workers serve
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=30)) as http:
        sender = Sender(base, http)
        queue: asyncio.Queue[Msg] = asyncio.Queue()
        firsts = [m for m in mix if not m.retry]
        for m in firsts:
            queue.put_nowait(m)
        retries = [m for m in mix if m.retry]

        async def worker() -> None:
            while True:
                try:
                    m = queue.get_nowait()
                except asyncio.QueueEmpty:
                    return
                t0 = time.perf_counter()
                try:
                    status, answered = await sender.send(m)
                except (aiohttp.ClientError, asyncio.TimeoutError):
                    status, answered = 0, False
                res.latencies.append(time.perf_counter() - t0)
                res.statuses[status] = res.statuses.get(status, 0) + 1
                res.empty_answers += not answered

        t0 = time.perf_counter()
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        for m in retries:  # the providers' retries arrive after the first delivery
            queue.put_nowait(m)
        await asyncio.gather(*[worker() for _ in range(concurrency)])
        res.seconds = time.perf_counter() - t0


async def count_end_to_end(db_url: str, mix: list[Msg], fake: FakeTelegram, res: Result) -> None:
    """Lost = a message with no inbound transcript row; duplicated = more than one, or a
    Telegram chat that got more answers than the transcript has replies for it."""
    from tortoise.functions import Count

    from bot.core import storage
    from bot.core.models import ChannelAccount, TranscriptEntry

    firsts = [m for m in mix if not m.retry]
    tg_chats = {m.user for m in firsts if m.channel == "telegram"}
    deadline = time.monotonic() + 60
    while (
        len({c.chat_id for c in fake.sent() if c.chat_id in tg_chats}) < len(tg_chats) and time.monotonic() < deadline
    ):
        await asyncio.sleep(0.2)
    await asyncio.sleep(1.0)
    await storage.open_db(db_url)
    try:
        rows = (
            await TranscriptEntry.filter(direction="in")
            .annotate(n=Count("id"))
            .group_by("channel", "msg_id")
            .values_list("channel", "msg_id", "n")
        )
        seen = {(ch, mid): n for ch, mid, n in rows}
        found = sum((m.channel, m.wire_id) in seen for m in firsts)
        res.checks["lost"] = len(firsts) - found
        for ch in ("web", "wechat", "telegram", "sms"):
            missing = sum((m.channel, m.wire_id) not in seen for m in firsts if m.channel == ch)
            if missing:
                res.checks[f"lost_{ch}"] = missing
        res.checks["duplicated"] = sum(n - 1 for n in seen.values() if n > 1)
        members = await ChannelAccount.filter(channel="telegram", external_id__in=list(tg_chats)).values_list(
            "member_id", flat=True
        )
        out_tg = await TranscriptEntry.filter(direction="out", channel="telegram", member_id__in=list(members)).count()
        sent_tg = len([c for c in fake.sent() if c.chat_id in tg_chats])
        res.checks["tg_unanswered"] = len(tg_chats - {c.chat_id for c in fake.sent()})
        res.checks["tg_extra_sends"] = max(0, sent_tg - out_tg)
    finally:
        await storage.close_db()


def start_service(argv: list[str], env: dict[str, str], port: int, log: Path) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "bot", "run", "--port", str(port), *argv],
        cwd=ROOT,
        env=env,
        stdout=log.open("wb"),
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )


async def wait_healthy(base: str, proc: subprocess.Popen[bytes], log: Path) -> None:
    deadline = time.monotonic() + 180
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise SystemExit(f"service exited:\n{log.read_text()[-3000:]}")
            try:
                async with http.get(f"{base}/healthz") as r:
                    if r.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.3)
    raise SystemExit(f"service did not become healthy:\n{log.read_text()[-3000:]}")


async def run_config(
    name: str,
    db_url: str,
    redis_url: str,
    workers: int,
    mix: list[Msg],
    concurrency: int,
    tmp: Path,
    *,
    settle_first: bool = True,
    accounting: tuple[StatsPostgres, RedisServer] | None = None,
    per_channel: int = 0,
) -> Result:
    fake = await FakeTelegram().start()
    port = free_port()
    env = {
        **os.environ,
        "BOT_DATABASE_URL": db_url,
        "BOT_REDIS_URL": redis_url,
        "BOT_LOG_LEVEL": "WARNING",
        "BOT_PUBLIC_URL": PUBLIC,
        "BOT_WECHAT_TOKEN": WECHAT_TOKEN,
        "BOT_WECHAT_APPID": WECHAT_APPID,
        "BOT_WECHAT_AES_KEY": WECHAT_AES,
        "BOT_TELEGRAM_TOKEN": fake.token,
        "BOT_TELEGRAM_API_BASE": fake.url,
        "BOT_TELEGRAM_WEBHOOK_SECRET": TG_SECRET,
        "BOT_TELEGRAM_RATE_GLOBAL": "100000",
        "BOT_TELEGRAM_RATE_PER_CHAT": "1000",
        "BOT_SMS_PROVIDER": "twilio",
        "BOT_SMS_AUTH_TOKEN": SMS_TOKEN,
        "BOT_SMS_ACCOUNT_SID": "ACbench",
        "BOT_SMS_FROM": "+15550001111",
        "BOT_SMS_API_BASE": "http://127.0.0.1:9",
        "BOT_WECHAT_API_BASE": "http://127.0.0.1:9",
        "BOT_JIEBA_CACHE_DIR": str(tmp),
        "BOT_OFFERS_ENABLED": "false",
        "BOT_WEBCHAT_IDENTITY_SECRET": BENCH_IDENTITY_SECRET,
        "BOT_WEBCHAT_RATE_PER_SESSION": "0",
        "BOT_WEBCHAT_RATE_PER_IP": "0",
    }
    # the operator's steps: migrate, then load the knowledge base
    migrated = (
        subprocess.run(
            [sys.executable, "-m", "bot", "migrate"],
            cwd=ROOT,
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        ).returncode
        == 0
    )
    if not migrated:
        print("warning: `python -m bot migrate` failed (migrations behind the models?); using the schema of the models")
    from bot.core import storage

    await storage.open_db(db_url, create_schema=True)  # tables of models newer than the last migration
    await storage.close_db()
    subprocess.run(
        [sys.executable, "-m", "bot", "kb", "import", "--quiet", "community/data/sample_kb.yaml"],
        cwd=ROOT,
        env=env,
        check=True,
        stdout=subprocess.DEVNULL,
    )
    log = tmp / f"{name.split()[0]}.log"
    env["BOT_PORT"] = str(port)
    if workers == 1 and not migrated:  # `run` would migrate SQLite on start: serve the schema as it is
        proc = subprocess.Popen(
            [sys.executable, "-m", "bot.workers", "web"],
            cwd=ROOT,
            env=env,
            stdout=log.open("wb"),
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    else:
        proc = start_service(["--workers", str(workers)] if workers > 1 else [], env, port, log)
    base = f"http://127.0.0.1:{port}"
    res = Result(name)
    try:
        await wait_healthy(base, proc, log)
        await asyncio.sleep(2.0 if workers > 1 else 0.5)  # every worker listening
        warm = build_mix(40, seed=1)
        await drive(
            base,
            [
                Msg(
                    m.channel,
                    f"{m.channel}-{900000 + i}" if m.channel != "telegram" else str(900000 + i),
                    m.user if m.channel != "telegram" else str(800000 + i),
                    m.text,
                )
                for i, m in enumerate(warm)
                if not m.retry
            ],
            8,
            Result("warm-up"),
        )
        if settle_first:  # the workers' start-up work (embedding, calibration) is not the load's
            await settle(proc.pid, label=f"{name.split(',')[0]} start-up")
        acc = None
        if accounting is not None:
            acc = Accounting(accounting[0], db_url, accounting[1], proc.pid)
            await acc.open()
        try:
            before = await acc.snapshot() if acc is not None else None
            await drive(base, mix, concurrency, res)
            if acc is not None and before is not None:
                await wait_telegram(fake, {m.user for m in mix if m.channel == "telegram"})
                await settle(proc.pid, quiet_for=1.0, timeout=60)
                mixed = diff("mix (+10 % retries)", res.statuses.get(200, 0), before, await acc.snapshot())
                mixed.db["req_per_s"] = len(res.latencies) / res.seconds if res.seconds else 0.0
                costs = await account_channels(acc, base, fake, per_channel, concurrency, proc.pid)
                # the mix ran before the idle window was measured: subtract it now
                idle = costs[0]
                k = mixed.seconds / idle.seconds if idle.seconds else 0.0
                mixed.statements = {
                    kd: (max(0.0, c - k * idle.statements.get(kd, (0, 0))[0]), r)
                    for kd, (c, r) in mixed.statements.items()
                }
                mixed.redis = {cmd: max(0.0, v - k * idle.redis.get(cmd, 0.0)) for cmd, v in mixed.redis.items()}
                mixed.cpu = {role: max(0.0, v - k * idle.cpu.get(role, 0.0)) for role, v in mixed.cpu.items()}
                for key in ("xact_commit", "tup_inserted", "tup_updated", "tup_deleted"):
                    mixed.db[key] = max(0.0, mixed.db.get(key, 0.0) - k * idle.db.get(key, 0.0))
                mixed.wal_bytes = max(0.0, mixed.wal_bytes - k * idle.wal_bytes)
                res.costs = [idle, mixed, *costs[1:]]
                res.statements_on = acc.statements_on
        finally:
            if acc is not None:
                await acc.close()
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    await count_end_to_end(db_url, mix, fake, res)
    await fake.close()
    return res


# --- per-message accounting on PostgreSQL + Redis ------------------------------------------------------------------
class StatsPostgres(PostgresCluster):
    """The tests' throw-away cluster, with ``pg_stat_statements`` loaded when it is installed."""

    @property
    def has_statements(self) -> bool:
        return (self.bindir.parent / "lib" / "pg_stat_statements.so").exists()

    def start(self) -> None:
        if not self.has_statements:
            return super().start()
        opts = (
            f"-h 127.0.0.1 -p {self.port} -k {self.root} -F -c fsync=off -c synchronous_commit=off "
            "-c full_page_writes=off -c max_connections=200 "
            "-c shared_preload_libraries=pg_stat_statements -c pg_stat_statements.track=top"
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

    def postmaster_pid(self) -> int | None:
        try:
            return int((self.datadir / "postmaster.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None


def role_of(pid: int) -> str:
    cl = cmdline(pid)
    if "bot.workers web" in cl:
        return "web"
    if "bot.workers queue" in cl:
        return "queue"
    return "supervisor"


@dataclass
class Snapshot:
    at: float
    statements: dict[str, tuple[int, int]]  # kind -> (calls, rows)
    db: dict[str, int]  # pg_stat_database counters of the service's database
    wal_bytes: int
    redis: dict[str, int]  # command -> calls
    outbox: dict[str, int]  # channel -> rows
    cpu: dict[str, float]  # role -> CPU seconds since start
    texts: dict[str, int] = field(default_factory=dict)  # statement -> calls (pg_stat_statements)


# asyncpg's Connection.reset() when a connection goes back to its pool: one round trip
# (a simple query of these four statements; pg_stat_statements lists each)
POOL_RESET = frozenset({"UNLISTEN *", "CLOSE ALL", "SELECT pg_advisory_unlock_all()", "RESET ALL"})


class Accounting:
    """Counters of PostgreSQL, Redis, the outbox table and the service's processes."""

    KINDS = ("SELECT", "INSERT", "UPDATE", "DELETE", "BEGIN", "COMMIT", "ROLLBACK", "SAVEPOINT", "RELEASE")

    def __init__(self, pg: StatsPostgres, db_url: str, redis: RedisServer, service_pid: int) -> None:
        self.pg, self.db_url, self.redis, self.service_pid = pg, db_url, redis, service_pid
        self.db_name = db_url.rsplit("/", 1)[1]
        self.statements_on = False
        self.texts: dict[str, int] = {}  # statement text -> calls, at the last snapshot
        self._admin = None  # asyncpg connection to the maintenance database
        self._db = None  # asyncpg connection to the service's database
        self._redis = None

    async def open(self) -> None:
        import asyncpg
        import redis.asyncio as aioredis

        self._admin = await asyncpg.connect(self.pg.url.replace("postgres://", "postgresql://", 1))
        self._db = await asyncpg.connect(self.db_url.replace("postgres://", "postgresql://", 1))
        if self.pg.has_statements:
            try:
                await self._admin.execute("CREATE EXTENSION IF NOT EXISTS pg_stat_statements")
                self.statements_on = True
            except Exception as exc:  # noqa: BLE001 - the fallback is pg_stat_database alone
                print(f"pg_stat_statements unavailable ({exc}); statements from pg_stat_database only")
        self._redis = aioredis.Redis.from_url(self.redis.url)

    async def close(self) -> None:
        for conn in (self._admin, self._db):
            if conn is not None:
                await conn.close()
        if self._redis is not None:
            await self._redis.aclose()

    def _cpu(self) -> dict[str, float]:
        out: dict[str, float] = {}
        for pid in descendants(self.service_pid):
            r = role_of(pid)
            out[r] = out.get(r, 0.0) + proc_ticks(pid) / CLK_TCK
        pm = self.pg.postmaster_pid()
        if pm is not None:
            out["postgresql"] = sum(proc_ticks(p) for p in descendants(pm)) / CLK_TCK
        if self.redis.proc is not None:
            out["redis"] = proc_ticks(self.redis.proc.pid) / CLK_TCK
        return out

    async def snapshot(self) -> Snapshot:
        assert self._admin is not None and self._db is not None and self._redis is not None
        # an idle backend flushes its pg_stat_database counters up to 10 s late (PostgreSQL 15:
        # PGSTAT_IDLE_INTERVAL); pg_stat_statements is current at once
        await asyncio.sleep(11.0)
        statements: dict[str, tuple[int, int]] = {}
        if self.statements_on:
            rows = await self._admin.fetch(
                "SELECT s.query, s.calls, s.rows FROM pg_stat_statements s JOIN pg_database d ON d.oid = s.dbid "
                "WHERE d.datname = $1 AND s.query NOT LIKE '%/* bench */%'",
                self.db_name,
            )
            self.texts = {r["query"]: int(r["calls"]) for r in rows}
            for r in rows:
                word = (r["query"].lstrip("( \n").split(None, 1) or ["?"])[0].upper()
                kind = word if word in self.KINDS else ("WITH" if word == "WITH" else "other")
                if r["query"].strip() in POOL_RESET:
                    kind = "pool reset"
                if word in ("START",):
                    kind = "BEGIN"
                if word == "END":
                    kind = "COMMIT"
                c, n = statements.get(kind, (0, 0))
                statements[kind] = (c + r["calls"], n + r["rows"])
        db = dict(
            await self._admin.fetchrow(
                "SELECT xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted, tup_returned, "
                "tup_fetched FROM pg_stat_database WHERE datname = $1 /* bench */",
                self.db_name,
            )
        )
        wal = int(await self._admin.fetchval("SELECT pg_wal_lsn_diff(pg_current_wal_lsn(), '0/0') /* bench */"))
        outbox = {
            r["channel"]: r["n"]
            for r in await self._db.fetch(
                "SELECT channel, count(*) AS n FROM outbox_message GROUP BY channel /* bench */"
            )
        }
        info = await self._redis.info("commandstats")
        redis = {k.removeprefix("cmdstat_"): int(v["calls"]) for k, v in info.items() if k != "cmdstat_info"}
        return Snapshot(time.perf_counter(), statements, db, wal, redis, outbox, self._cpu(), dict(self.texts))


@dataclass
class Cost:
    """One phase's deltas, less the idle background for as long as the phase lasted."""

    name: str
    messages: int
    seconds: float
    statements: dict[str, tuple[float, float]] = field(default_factory=dict)
    db: dict[str, float] = field(default_factory=dict)
    wal_bytes: float = 0.0
    redis: dict[str, float] = field(default_factory=dict)
    outbox: float = 0.0
    cpu: dict[str, float] = field(default_factory=dict)
    texts: dict[str, int] = field(default_factory=dict)  # statement -> calls in the phase

    def per(self, x: float) -> float:
        return x / self.messages if self.messages else 0.0

    @property
    def statements_total(self) -> float:
        """Statements the service sent, not counting the pool resets' four each."""
        return sum(c for k, (c, _) in self.statements.items() if k != "pool reset")

    @property
    def pool_resets(self) -> float:
        return self.statements.get("pool reset", (0.0, 0.0))[0] / len(POOL_RESET)

    @property
    def round_trips(self) -> float:
        """Statements plus pool resets (one round trip each; asyncpg's executemany aside)."""
        return self.statements_total + self.pool_resets

    @property
    def rows_written(self) -> float:
        return self.db.get("tup_inserted", 0) + self.db.get("tup_updated", 0) + self.db.get("tup_deleted", 0)

    @property
    def redis_total(self) -> float:
        return sum(self.redis.values())


def diff(name: str, messages: int, a: Snapshot, b: Snapshot, idle: Cost | None = None) -> Cost:
    seconds = b.at - a.at
    k = seconds / idle.seconds if idle is not None and idle.seconds else 0.0
    c = Cost(name, messages, seconds)
    for kind in set(a.statements) | set(b.statements):
        c0, r0 = a.statements.get(kind, (0, 0))
        c1, r1 = b.statements.get(kind, (0, 0))
        ic, ir = idle.statements.get(kind, (0.0, 0.0)) if idle else (0.0, 0.0)
        c.statements[kind] = (max(0.0, c1 - c0 - k * ic), max(0.0, r1 - r0 - k * ir))
    for key in b.db:
        c.db[key] = max(0.0, b.db[key] - a.db.get(key, 0) - (k * idle.db.get(key, 0.0) if idle else 0.0))
    c.wal_bytes = max(0.0, b.wal_bytes - a.wal_bytes - (k * idle.wal_bytes if idle else 0.0))
    for cmd in set(a.redis) | set(b.redis):
        d = b.redis.get(cmd, 0) - a.redis.get(cmd, 0) - (k * idle.redis.get(cmd, 0.0) if idle else 0.0)
        if d > 0.5:
            c.redis[cmd] = d
    c.outbox = sum(b.outbox.values()) - sum(a.outbox.values())
    c.texts = {q: n - a.texts.get(q, 0) for q, n in b.texts.items() if n > a.texts.get(q, 0)}
    for role in set(a.cpu) | set(b.cpu):
        d = b.cpu.get(role, 0.0) - a.cpu.get(role, 0.0) - (k * idle.cpu.get(role, 0.0) if idle else 0.0)
        c.cpu[role] = max(0.0, d)
    return c


async def wait_telegram(fake: FakeTelegram, chats: set[str], timeout: float = 60) -> None:
    """Until every chat got an answer through the Bot API (they go out after the webhook's 200)."""
    deadline = time.monotonic() + timeout
    while chats - {c.chat_id for c in fake.sent()} and time.monotonic() < deadline:
        await asyncio.sleep(0.2)


def channel_phase(channel: str, n: int, phase: int) -> list[Msg]:
    """``n`` messages of one channel, from ``n // 4`` new senders who send four each (so a
    quarter are first contacts), message ids of their own."""
    rnd = random.Random(100 + phase)
    out = []
    for j in range(n):
        k = j // 4 + 1000 * phase
        base = 500_000 + 10_000 * phase + j
        user = {
            "web": f"pw{k}",
            "wechat": f"oPhase{k:06d}",
            "telegram": str(600_000 + k),
            "sms": f"+86139{k:08d}",
        }[channel]
        key = str(base) if channel == "telegram" else f"{channel}-{base}"
        out.append(Msg(channel, key, user, rnd.choice(QUESTIONS)))
    return out


async def account_channels(
    acc: Accounting, base: str, fake: FakeTelegram, per_channel: int, concurrency: int, service_pid: int
) -> list[Cost]:
    await settle(service_pid, quiet_for=2.0, timeout=60, below=0.05)
    # the background with no traffic: the queue worker's polling, autovacuum, the stores' timers
    a = await acc.snapshot()
    await asyncio.sleep(5.0)
    b = await acc.snapshot()
    idle = diff("idle", 0, a, b)
    costs = [idle]
    for phase, channel in enumerate(("web", "wechat", "telegram", "sms"), start=1):
        msgs = channel_phase(channel, per_channel, phase)
        res = Result(channel)
        a = await acc.snapshot()
        await drive(base, msgs, concurrency, res)
        if channel == "telegram":  # answered through the Bot API after the webhook's 200
            await wait_telegram(fake, {m.user for m in msgs})
        await settle(service_pid, quiet_for=1.0, timeout=60, below=0.05)
        b = await acc.snapshot()
        answered = res.statuses.get(200, 0)
        cost = diff(channel, answered, a, b, idle)
        cost.db["req_per_s"] = len(res.latencies) / res.seconds if res.seconds else 0.0
        costs.append(cost)
    return costs


def print_costs(costs: list[Cost], workers: int, statements_on: bool) -> dict[str, object]:
    idle, phases = costs[0], costs[1:]
    print(
        f"\nPer answered message, {workers} web workers + queue worker on PostgreSQL + Redis (background with no "
        f"traffic subtracted: per second {idle.statements_total / idle.seconds:.1f} statements, "
        f"{idle.redis_total / idle.seconds:.1f} Redis commands, "
        f"{sum(idle.cpu.values()) / idle.seconds * 1000:.1f} ms CPU of all processes)\n"
    )
    kinds = sorted(
        {k for c in phases for k in c.statements if k != "pool reset"}, key=lambda k: (k not in Accounting.KINDS, k)
    )
    head = ["channel", "messages", "closed-loop msg/s", "web CPU ms", "queue CPU ms", "PostgreSQL CPU ms",
            "Redis CPU ms", "PG statements" + ("" if statements_on else " (n/a)"), *[f"  {k}" for k in kinds],
            "PG pool resets (1 round trip each)", "PG round trips", "PG transactions", "rows written", "  inserted", "  updated", "  deleted", "WAL kB", "Redis commands",
            "outbox rows"]  # fmt: skip
    rows: dict[str, list[str]] = {}
    out: dict[str, object] = {}
    for c in phases:
        per = c.per
        vals = {
            "messages": c.messages,
            "closed_loop_msg_per_s": round(c.db.get("req_per_s", 0.0), 1),
            "web_cpu_ms": round(1000 * per(c.cpu.get("web", 0.0)), 3),
            "queue_cpu_ms": round(1000 * per(c.cpu.get("queue", 0.0)), 3),
            "postgresql_cpu_ms": round(1000 * per(c.cpu.get("postgresql", 0.0)), 3),
            "redis_cpu_ms": round(1000 * per(c.cpu.get("redis", 0.0)), 3),
            "pg_statements": round(per(c.statements_total), 2),
            "pg_statements_by_kind": {k: round(per(c.statements.get(k, (0, 0))[0]), 2) for k in kinds},
            "pg_pool_resets": round(per(c.pool_resets), 2),
            "pg_round_trips": round(per(c.round_trips), 2),
            "pg_transactions": round(per(c.db.get("xact_commit", 0) + c.db.get("xact_rollback", 0)), 2),
            "rows_written": round(per(c.rows_written), 2),
            "rows_inserted": round(per(c.db.get("tup_inserted", 0)), 2),
            "rows_updated": round(per(c.db.get("tup_updated", 0)), 2),
            "rows_deleted": round(per(c.db.get("tup_deleted", 0)), 2),
            "wal_bytes": round(per(c.wal_bytes)),
            "redis_commands": round(per(c.redis_total), 2),
            "redis_by_command": {k: round(per(v), 2) for k, v in sorted(c.redis.items(), key=lambda x: -x[1])},
            "outbox_rows": round(per(c.outbox), 2),
        }
        out[c.name] = vals
        rows[c.name] = [
            str(c.messages),
            f"{vals['closed_loop_msg_per_s']:.0f}",
            f"{vals['web_cpu_ms']:.2f}",
            f"{vals['queue_cpu_ms']:.2f}",
            f"{vals['postgresql_cpu_ms']:.2f}",
            f"{vals['redis_cpu_ms']:.2f}",
            f"{vals['pg_statements']:.2f}",
            *[f"{vals['pg_statements_by_kind'][k]:.2f}" for k in kinds],  # type: ignore[index]
            f"{vals['pg_pool_resets']:.2f}",
            f"{vals['pg_round_trips']:.2f}",
            f"{vals['pg_transactions']:.2f}",
            f"{vals['rows_written']:.2f}",
            f"{vals['rows_inserted']:.2f}",
            f"{vals['rows_updated']:.2f}",
            f"{vals['rows_deleted']:.2f}",
            f"{vals['wal_bytes'] / 1024:.1f}",  # type: ignore[operator]
            f"{vals['redis_commands']:.2f}",
            f"{vals['outbox_rows']:.2f}",
        ]
    names = list(rows)
    print("| per message | " + " | ".join(names) + " |")
    print("| --- | " + " | ".join("---" for _ in names) + " |")
    for i, h in enumerate(head[1:]):
        print(f"| {h} | " + " | ".join(rows[n][i] for n in names) + " |")
    print("\nPostgreSQL statements per message, the most frequent (pg_stat_statements):")
    for c in phases:
        if not c.messages:
            continue
        print(f"  {c.name}:")
        for q, n in sorted(c.texts.items(), key=lambda x: -x[1])[:12]:
            print(f"    {n / c.messages:6.2f}  {' '.join(q.split())[:150]}")
    print(
        "\nRedis commands per message, by command (INFO commandstats: the commands the Lua scripts run "
        "inside Redis count too, so client round trips are fewer):"
    )
    for c in phases:
        top = ", ".join(
            f"{k} {v / c.messages:.2f}" for k, v in sorted(c.redis.items(), key=lambda x: -x[1]) if c.messages
        )
        print(f"  {c.name}: {top}")
    out["idle_per_s"] = {
        "pg_statements": round(idle.statements_total / idle.seconds, 2),
        "redis_commands": round(idle.redis_total / idle.seconds, 2),
        "cpu_ms": {k: round(1000 * v / idle.seconds, 2) for k, v in idle.cpu.items()},
    }
    return out


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=1600)
    ap.add_argument("--concurrency", type=int, default=32)
    ap.add_argument("--workers", type=int, default=2, help="web workers of the production configuration")
    ap.add_argument(
        "--per-channel", type=int, default=0, help="messages per channel for the accounting (default: messages / 2)"
    )
    ap.add_argument("--no-accounting", dest="accounting", action="store_false")
    ap.add_argument(
        "--no-settle",
        dest="settle",
        action="store_false",
        help="drive as soon as the service answers (as before 2026-12): start-up work then shares the CPU",
    )
    args = ap.parse_args()
    mix = build_mix(min(args.messages, 20000))
    per_channel = args.per_channel or max(40, args.messages // 2)
    tmp = Path(tempfile.mkdtemp(prefix="everycsr-load-"))
    redis, pg = RedisServer(), StatsPostgres(postgres_bindir() or Path("/nonexistent"))
    redis.start()
    pg.init()
    pg.start()
    try:
        base_res = await run_config(
            "1 process, SQLite, in-process",
            f"sqlite://{tmp / 'bench.sqlite3'}",
            "",
            1,
            mix,
            args.concurrency,
            tmp,
            settle_first=args.settle,
        )
        pg_url = await create_database(pg.url)
        prod_res = await run_config(
            f"{args.workers} workers, PostgreSQL + Redis",
            pg_url,
            redis.url + "/0",
            args.workers,
            mix,
            args.concurrency,
            tmp,
            settle_first=args.settle,
            accounting=(pg, redis) if args.accounting else None,
            per_channel=per_channel,
        )
    finally:
        redis.cleanup()
        pg.cleanup()
    print(
        f"\n{len(mix)} requests ({len([m for m in mix if m.retry])} retries), concurrency {args.concurrency}, "
        f"{os.cpu_count()} CPUs"
    )
    for r in (base_res, prod_res):
        print(r.line())
    ratio = (len(prod_res.latencies) / prod_res.seconds) / (len(base_res.latencies) / base_res.seconds)
    print(f"throughput ratio ({args.workers} workers PG+Redis / 1 process SQLite): {ratio:.2f}")
    out: dict[str, object] = {"baseline": base_res.checks, "production": prod_res.checks}
    if prod_res.costs:
        out["per_message"] = print_costs(prod_res.costs, args.workers, prod_res.statements_on)
    print(json.dumps(out))


if __name__ == "__main__":
    asyncio.run(main())
