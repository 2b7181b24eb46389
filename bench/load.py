"""Mixed-traffic load test: 2 workers on PostgreSQL + Redis vs one process on SQLite.

Starts everything itself on 127.0.0.1 (a throw-away redis-server and PostgreSQL cluster
from the Debian packages, the loopback Telegram Bot API of tests/fakes), runs the real
service (`python -m bot run` and `python -m bot run --workers 2`), and sends the same
bounded mix to each: web chat JSON, WeChat safe-mode (AES) XML, Telegram webhook
updates and Twilio-signed SMS forms — with ~10% of the messages delivered twice, the
way providers retry. Then it counts end to end, from the database and the fake
Telegram API: every message processed exactly once (no loss, no duplicate), every
retry answered without acting twice, every Telegram update answered once.

    .venv/bin/python bench/load.py [--messages 1600] [--concurrency 32]

Prints throughput, p50/p99 latency per configuration and the ratio.
"""

from __future__ import annotations

import argparse
import asyncio
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
from tests.fixtures_services import PostgresCluster, RedisServer, create_database, free_port, postgres_bindir  # noqa: E402

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
        return self.key


@dataclass
class Result:
    name: str
    seconds: float = 0.0
    latencies: list[float] = field(default_factory=list)
    statuses: dict[int, int] = field(default_factory=dict)
    empty_answers: int = 0
    checks: dict[str, int] = field(default_factory=dict)

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

        ts, nonce = str(int(time.time())), f"n{m.key}"
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
    name: str, db_url: str, redis_url: str, workers: int, mix: list[Msg], concurrency: int, tmp: Path
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
        await drive(base, mix, concurrency, res)
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(60)
    await count_end_to_end(db_url, mix, fake, res)
    await fake.close()
    return res


async def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--messages", type=int, default=1600)
    ap.add_argument("--concurrency", type=int, default=32)
    args = ap.parse_args()
    mix = build_mix(min(args.messages, 20000))
    tmp = Path(tempfile.mkdtemp(prefix="everycsr-load-"))
    redis, pg = RedisServer(), PostgresCluster(postgres_bindir() or Path("/nonexistent"))
    redis.start()
    pg.init()
    pg.start()
    try:
        base_res = await run_config(
            "1 process, SQLite, in-process", f"sqlite://{tmp / 'bench.sqlite3'}", "", 1, mix, args.concurrency, tmp
        )
        pg_url = await create_database(pg.url)
        prod_res = await run_config(
            "2 workers, PostgreSQL + Redis", pg_url, redis.url + "/0", 2, mix, args.concurrency, tmp
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
    print(f"throughput ratio (2 workers PG+Redis / 1 process SQLite): {ratio:.2f}")
    print(json.dumps({"baseline": base_res.checks, "production": prod_res.checks}))


if __name__ == "__main__":
    asyncio.run(main())
