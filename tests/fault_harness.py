"""Fault runs: a real service under a burst on every channel, killed -9 at random points.

Used by ``tests/test_faults.py`` (small, < 30 s) and ``bench/faults.py`` (at volume). The
service is the real ``python -m bot run`` (one process on SQLite, or ``--workers N`` on
PostgreSQL + Redis); the remote sides are the loopback fakes of ``tests/fakes``, which
count every delivery and drop no duplicate themselves. Each channel's client behaves as
the real one does:

- Telegram: redelivers an update until it gets a 200 (and, now and then, once more after
  one: a 200 the Bot API never saw);
- WeChat: waits 5 s for an answer and retries three times (safe mode, signed);
- SMS (Twilio): retries a webhook that failed, now and then one that did not;
- web chat: retries with the same ``msg_id`` until it gets an answer.

Every message comes from its own sender, so each is checked on its own: exactly one
inbound transcript row, its answer recorded once (outbound rows = the replies recorded on
the inbound row), and each reply delivered once: Telegram sendMessage calls, WeChat
passive answer accepted plus customer-service sends, SMS TwiML accepted plus API sends,
web replies in the answer the client accepted.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import os
import random
import signal
import subprocess
import sys
import time
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from bot.core.settings import ROOT
from tests.fakes.telegram_api import FakeTelegram, message_update
from tests.fakes.twilio_api import ACCOUNT_SID, AUTH_TOKEN, FakeTwilio
from tests.fakes.wechat_api import FakeWeChatAPI
from tests.fixtures_services import free_port

WECHAT_TOKEN, WECHAT_APPID = "faulttoken", "wxfault000000001"
WECHAT_AES = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
TG_SECRET, PUBLIC, WEB_SECRET = "fault-secret", "http://faults.local", "fault-web-secret"
QUESTIONS = [
    "我的流量还剩多少，怎么查？",
    "话费余额怎么查",
    "宽带坏了怎么办",
    "how do I check my data balance",
    "CXLL",
    "怎么办理5G套餐",
    "积分怎么兑换",
    "你好",
]
CHANNELS = ("telegram", "wechat", "sms", "web")


@dataclass
class Msg:
    channel: str
    n: int  # unique over the run: the sender and the channel's message id derive from it
    text: str

    @property
    def user(self) -> str:
        return {
            "telegram": str(500000 + self.n),
            "wechat": f"oFault{self.n:06d}",
            "sms": f"+8613{self.n:09d}",
            "web": f"fw{self.n}",
        }[self.channel]


@dataclass
class Outcome:
    """What each message's sender saw accepted (the last answer the channel took)."""

    attempts: Counter[int] = field(default_factory=Counter)
    accepted: dict[int, int] = field(default_factory=dict)  # n -> replies in the accepted inline answer
    given_up: set[int] = field(default_factory=set)  # the channel stopped retrying (WeChat after 3)
    trail: dict[int, list[str]] = field(default_factory=dict)  # n -> "status@seconds" per attempt


@dataclass
class Report:
    channel: str
    messages: int = 0
    lost: int = 0  # never recorded, or recorded and never answered, or never delivered
    processed_twice: int = 0  # two inbound rows, or more answers than recorded
    delivered_twice: int = 0  # a reply delivered more than once
    given_up: int = 0  # the channel itself gave up retrying while the service was down
    examples: list[str] = field(default_factory=list)

    def line(self) -> str:
        return (
            f"{self.channel:<9} {self.messages:6d} messages   lost {self.lost:4d}   processed twice "
            f"{self.processed_twice:4d}   delivered twice {self.delivered_twice:4d}   "
            f"(channel gave up: {self.given_up})"
        )


class Service:
    """``python -m bot run`` in its own process group; kill -9 and restart it."""

    def __init__(self, env: dict[str, str], port: int, log: Path, workers: int = 1) -> None:
        self.env, self.port, self.log, self.workers = env, port, log, workers
        self.proc: subprocess.Popen[bytes] | None = None
        self.kills = 0
        self.downtimes: list[float] = []  # seconds from each kill to healthy again
        self.faults: list[str] = []  # what was done, in order

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> None:
        argv = [sys.executable, "-m", "bot", "run", "--port", str(self.port)]
        if self.workers > 1:
            argv += ["--workers", str(self.workers)]
        self.proc = subprocess.Popen(
            argv, cwd=ROOT, env=self.env, stdout=self.log.open("ab"), stderr=subprocess.STDOUT, start_new_session=True
        )

    async def healthy(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        async with aiohttp.ClientSession() as http:
            while time.monotonic() < deadline:
                try:
                    async with http.get(f"{self.base}/healthz") as r:
                        if r.status == 200:
                            return
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.1)
        raise RuntimeError(f"service not healthy:\n{self.log.read_text()[-3000:]}")

    def children(self) -> list[int]:
        assert self.proc is not None
        out = subprocess.run(["ps", "-o", "pid=", "--ppid", str(self.proc.pid)], capture_output=True, text=True)
        return [int(x) for x in out.stdout.split()]

    async def kill9(self, rnd: random.Random) -> str:
        """Single process: kill it and start it again (as systemd would). Several workers:
        kill one child at random; the supervisor restarts it."""
        assert self.proc is not None
        self.kills += 1
        if self.workers == 1:
            os.kill(self.proc.pid, signal.SIGKILL)
            await asyncio.get_running_loop().run_in_executor(None, self.proc.wait)
            self.start()
            return "service"
        victim = rnd.choice(self.children())
        os.kill(victim, signal.SIGKILL)
        return f"child {victim}"

    async def full_strength(self, timeout: float = 120) -> None:
        """Several workers: wait until every web worker listens again and the queue worker
        runs, and the dashboard KPI process (a kill is one failure, not two overlapping ones)."""
        if self.workers == 1:
            return
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            out = subprocess.run(["ss", "-Hltnp", f"sport = :{self.port}"], capture_output=True, text=True).stdout
            listening = {int(p) for p in __import__("re").findall(r"pid=(\d+)", out)}
            # the web workers, the queue worker and the dashboard KPI process
            if len(listening) >= self.workers and len(self.children()) == self.workers + 2:
                return
            await asyncio.sleep(0.2)
        raise RuntimeError("the supervisor did not bring every worker back")

    def stop(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            return
        os.killpg(self.proc.pid, signal.SIGTERM)
        try:
            self.proc.wait(30)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
            self.proc.wait(10)


class Channels:
    """The remote side of every channel: the fakes that count deliveries, and the clients
    that deliver (and redeliver) members' messages the way each platform does."""

    def __init__(self, rnd: random.Random, repeat_share: float) -> None:
        from wechatpy.crypto import WeChatCrypto

        self.rnd = rnd
        self.repeat_share = repeat_share  # share of messages delivered again after a success
        self.tg = FakeTelegram()
        self.wx = FakeWeChatAPI(appid=WECHAT_APPID)
        self.twilio = FakeTwilio()
        self.crypto = WeChatCrypto(WECHAT_TOKEN, WECHAT_AES, WECHAT_APPID)
        self.outcome: dict[str, Outcome] = {c: Outcome() for c in CHANNELS}
        self.base = ""

    async def start(self) -> None:
        await self.tg.start()
        await self.wx.start()
        await self.twilio.start()

    async def close(self) -> None:
        await self.tg.close()
        await self.wx.close()
        await self.twilio.stop()

    def env(self) -> dict[str, str]:
        return {
            "BOT_PUBLIC_URL": PUBLIC,
            "BOT_WECHAT_TOKEN": WECHAT_TOKEN,
            "BOT_WECHAT_APPID": WECHAT_APPID,
            "BOT_WECHAT_AES_KEY": WECHAT_AES,
            "BOT_WECHAT_SECRET": self.wx.secret,
            "BOT_WECHAT_API_BASE": self.wx.base,
            "BOT_TELEGRAM_TOKEN": self.tg.token,
            "BOT_TELEGRAM_API_BASE": self.tg.url,
            "BOT_TELEGRAM_WEBHOOK_SECRET": TG_SECRET,
            "BOT_TELEGRAM_RATE_GLOBAL": "100000",
            "BOT_TELEGRAM_RATE_PER_CHAT": "1000",
            "BOT_SMS_PROVIDER": "twilio",
            "BOT_SMS_AUTH_TOKEN": AUTH_TOKEN,
            "BOT_SMS_ACCOUNT_SID": ACCOUNT_SID,
            "BOT_SMS_FROM": "+15550001111",
            "BOT_SMS_API_BASE": self.twilio.base_url,
            "BOT_WEBCHAT_IDENTITY_SECRET": WEB_SECRET,
        }

    async def deliver(self, http: aiohttp.ClientSession, m: Msg) -> None:
        await getattr(self, f"_{m.channel}")(http, m)

    def _again(self) -> bool:
        return self.rnd.random() < self.repeat_share

    async def _post(self, http: aiohttp.ClientSession, path: str, timeout: float, **kw: Any) -> tuple[int, str]:
        try:
            async with http.post(self.base + path, timeout=aiohttp.ClientTimeout(total=timeout), **kw) as r:
                return r.status, await r.text()
        except asyncio.TimeoutError:
            return -1, ""  # no answer in time (the service is up but slow, or hung)
        except aiohttp.ClientError:
            return 0, ""  # refused or cut off: the service is down

    async def _telegram(self, http: aiohttp.ClientSession, m: Msg) -> None:
        out = self.outcome["telegram"]
        update = message_update(100000 + m.n, int(m.user), m.text)
        extra = self._again()
        while True:
            out.attempts[m.n] += 1
            status, _ = await self._post(
                http, "/telegram/webhook", 60, json=update, headers={"X-Telegram-Bot-Api-Secret-Token": TG_SECRET}
            )
            if status == 200 and not extra:
                out.accepted[m.n] = 0  # answers go through the Bot API
                return
            extra = extra and status != 200
            await asyncio.sleep(0.3 + self.rnd.random() * 0.5)  # Telegram's redelivery delay

    async def _wechat(self, http: aiohttp.ClientSession, m: Msg) -> None:
        from bot.channels.wechat.signature import sign

        out = self.outcome["wechat"]
        lose_first = self._again()  # the first answer is lost on the way back: WeChat retries
        for attempt in range(4):  # the callback and WeChat's three retries
            out.attempts[m.n] += 1
            ts, nonce = str(int(time.time())), f"n{m.n}a{attempt}"
            plain = (
                f"<xml><ToUserName><![CDATA[gh_fault]]></ToUserName><FromUserName><![CDATA[{m.user}]]>"
                f"</FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
                f"<Content><![CDATA[{m.text}]]></Content><MsgId>{10**11 + m.n}</MsgId></xml>"
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
            t0 = time.monotonic()
            status, body = await self._post(http, f"/wechat?{query}", 5.0, data=enc.encode())
            out.trail.setdefault(m.n, []).append(f"{status}@{time.monotonic() - t0:.1f}s")
            if status == 200 and not (lose_first and attempt == 0):
                out.accepted[m.n] = 1 if "<Encrypt>" in body else 0
                return
            await asyncio.sleep(max(0.0, 5.0 - (time.monotonic() - t0)))  # WeChat waits 5 s per try
        out.given_up.add(m.n)

    async def _sms(self, http: aiohttp.ClientSession, m: Msg) -> None:
        from sms_gateway.twilio import signature

        out = self.outcome["sms"]
        form = {"MessageSid": f"SM{m.n:032d}", "From": m.user, "To": "+15550001111", "Body": m.text}
        sig = signature(AUTH_TOKEN, PUBLIC + "/sms/inbound", list(form.items()))
        extra = self._again()
        while True:
            out.attempts[m.n] += 1
            status, body = await self._post(
                http,
                "/sms/inbound",
                15,
                data=urlencode(form),
                headers={"Content-Type": "application/x-www-form-urlencoded", "X-Twilio-Signature": sig},
            )
            if status == 200 and not extra:
                out.accepted[m.n] = body.count("<Message>")
                return
            extra = extra and status != 200
            await asyncio.sleep(0.5 + self.rnd.random())

    async def _web(self, http: aiohttp.ClientSession, m: Msg) -> None:
        out = self.outcome["web"]
        user_hash = hmac.new(WEB_SECRET.encode(), m.user.encode(), hashlib.sha256).hexdigest()
        body = {"user": m.user, "user_hash": user_hash, "text": m.text, "msg_id": f"fm{m.n}"}
        extra = self._again()
        while True:
            out.attempts[m.n] += 1
            status, text = await self._post(http, "/api/v1/chat", 15, json=body)
            if status == 200 and not extra:
                import json

                out.accepted[m.n] = len(json.loads(text).get("replies", []))
                return
            extra = extra and status != 200
            await asyncio.sleep(0.3 + self.rnd.random() * 0.5)


def build_burst(per_channel: int, seed: int) -> list[Msg]:
    rnd = random.Random(seed)
    msgs = [
        Msg(ch, i * len(CHANNELS) + k, rnd.choice(QUESTIONS))
        for i in range(per_channel)
        for k, ch in enumerate(CHANNELS)
    ]
    rnd.shuffle(msgs)
    return msgs


async def prepare_database(db_url: str) -> None:
    """The operator's steps (migrate, load the knowledge base), in this process."""
    from bot.core import storage
    from bot.cli import import_kb

    if db_url.startswith("sqlite"):
        await storage.migrate(db_url)
        await storage.open_db(db_url)
    else:
        await storage.open_db(db_url, create_schema=True)
    try:
        await import_kb(ROOT / "community" / "data" / "sample_kb.yaml", quiet=True)
    finally:
        await storage.close_db()


Fault = Callable[[Service, random.Random], Awaitable[str]]


async def kill9(service: Service, rnd: random.Random) -> str:
    return "kill -9 " + await service.kill9(rnd)


def kill9_child(kind: str) -> Fault:
    """Several workers: kill -9 a child whose command line contains ``kind`` ("bot.workers
    web" for a web worker, "bot.workers queue" for the queue worker)."""

    async def fault(service: Service, rnd: random.Random) -> str:
        mine = [
            p
            for p in service.children()
            if kind in Path(f"/proc/{p}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        ]
        victim = rnd.choice(mine)
        service.kills += 1
        os.kill(victim, signal.SIGKILL)
        return f"kill -9 {kind} {victim}"

    return fault


def restart_of(server: Any, name: str) -> Fault:
    """A backing server (tests.fixtures_services.RedisServer / PostgresCluster) restarted."""

    async def fault(service: Service, rnd: random.Random) -> str:
        await asyncio.get_running_loop().run_in_executor(None, server.restart)
        return f"{name} restart"

    return fault


async def run(
    tmp: Path,
    msgs: list[Msg],
    *,
    db_url: str,
    redis_url: str = "",
    workers: int = 1,
    kills: int = 2,
    concurrency: int = 16,
    seed: int = 1,
    repeat_share: float = 0.1,
    extra_env: dict[str, str] | None = None,
    faults: list[Fault] | None = None,
) -> tuple[list[Report], Service]:
    """Send the burst, inject ``faults`` (default: ``kills`` times kill -9) at random points of
    it, then check every message."""
    faults = faults if faults is not None else [kill9] * kills
    kills = len(faults)
    rnd = random.Random(seed)
    await prepare_database(db_url)
    channels = Channels(rnd, repeat_share)
    await channels.start()
    env = {
        **os.environ,
        "BOT_DATABASE_URL": db_url,
        "BOT_REDIS_URL": redis_url,
        "BOT_LOG_LEVEL": "WARNING",
        "BOT_JIEBA_CACHE_DIR": str(tmp),
        "BOT_OFFERS_ENABLED": "false",
        # short leases so that what a killed process held comes back within the run
        "BOT_DEDUP_LEASE_SECONDS": "3",
        "BOT_OUTBOX_LEASE_SECONDS": "4",
        "BOT_OUTBOX_POLL_SECONDS": "0.2",
        "BOT_TELEGRAM_INLINE_GRACE_SECONDS": "2",
        "BOT_OUTBOX_KICK_GRACE_SECONDS": "2",
        **channels.env(),
        **(extra_env or {}),
    }
    service = Service(env, free_port(), tmp / "service.log", workers)
    channels.base = service.base
    service.start()
    try:
        await service.healthy()
        if workers > 1:
            await asyncio.sleep(2.0)  # every worker listening
        queue: asyncio.Queue[Msg] = asyncio.Queue()
        for m in msgs:
            queue.put_nowait(m)
        done = 0

        async def client(http: aiohttp.ClientSession) -> None:
            nonlocal done
            while not queue.empty():
                m = queue.get_nowait()
                await channels.deliver(http, m)
                done += 1

        async def killer() -> None:
            # kills spread over the burst, each after a random share of the messages, and
            # with traffic served in between (two kills back to back are one long outage)
            gap = len(msgs) / (kills + 1)
            last = 0.0
            for k in range(kills):
                mark = max(gap * (k + rnd.uniform(0.5, 1.0)), last + gap / 2)
                while done < mark and not queue.empty():
                    await asyncio.sleep(0.01)
                last = done
                await asyncio.sleep(rnd.random() * 0.2)  # mid-message, not between
                t0 = time.monotonic()
                service.faults.append(await faults[k](service, rnd))
                await service.healthy()
                service.downtimes.append(time.monotonic() - t0)
                await service.full_strength()

        connector = aiohttp.TCPConnector(limit=concurrency, force_close=True)
        async with aiohttp.ClientSession(connector=connector) as http:
            await asyncio.gather(killer(), *[client(http) for _ in range(concurrency)])
        await _settle(db_url)
    finally:
        service.stop()
    reports = await _check(db_url, msgs, channels)
    await channels.close()
    return reports, service


async def _settle(db_url: str, timeout: float = 30.0) -> None:
    """Wait until the outbox has nothing left in flight (leases of killed senders included)."""
    from bot.core import storage
    from bot.core.models import OutboxMessage

    await storage.open_db(db_url)
    try:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if not await OutboxMessage.filter(status__in=("queued", "sending", "failed")).exists():
                break
            await asyncio.sleep(0.2)
        await asyncio.sleep(0.5)  # a send in flight right now reaches its fake
    finally:
        await storage.close_db()


async def _check(db_url: str, msgs: list[Msg], channels: Channels) -> list[Report]:
    from bot.core import storage
    from bot.core.models import ChannelAccount, TranscriptEntry

    tg_sent = Counter(c.chat_id for c in channels.tg.sent())
    wx_sent = Counter(str(s.get("touser")) for s in channels.wx.sent)
    sms_sent = Counter(s.form.get("To", "") for s in channels.twilio.sent)
    reports = {c: Report(c) for c in CHANNELS}
    await storage.open_db(db_url)
    try:
        for m in msgs:
            rep = reports[m.channel]
            rep.messages += 1
            out = channels.outcome[m.channel]
            if m.n in out.given_up:
                rep.given_up += 1
            account = await ChannelAccount.get_or_none(channel=m.channel, external_id=m.user)
            inbound = await TranscriptEntry.filter(member_id=account.member_id, direction="in") if account else []
            outbound = (
                await TranscriptEntry.filter(member_id=account.member_id, direction="out").count() if account else 0
            )
            recorded = [e for e in inbound if e.payload and "replies" in e.payload]
            answers = len(recorded[0].payload["replies"]) if recorded else 0
            if m.channel == "telegram":
                delivered = tg_sent[m.user]
            elif m.channel == "wechat":
                delivered = out.accepted.get(m.n, 0) + wx_sent[m.user]
            elif m.channel == "sms":
                delivered = out.accepted.get(m.n, 0) + sms_sent[m.user]
            else:
                delivered = out.accepted.get(m.n, 0)
            problem = ""
            if len(inbound) > 1 or outbound > answers or len(recorded) > 1:
                rep.processed_twice += 1
                problem = f"processed twice: {len(inbound)} in, {outbound} out for {answers} answers"
            elif m.n in out.given_up and all(t.startswith("0@") for t in out.trail[m.n][1:]):
                # the service was down for all of WeChat's retries: WeChat gave up
                if len(rep.examples) < 5:
                    rep.examples.append(f"{m.channel} #{m.n}: WeChat gave up: {' '.join(out.trail[m.n])}")
            elif not recorded or answers == 0 or delivered < answers:
                rep.lost += 1
                problem = f"lost: {len(inbound)} in, answer recorded {bool(recorded)}, delivered {delivered}/{answers}"
            elif delivered > answers:
                rep.delivered_twice += 1
                problem = f"delivered twice: {delivered} for {answers} answers"
            if problem and len(rep.examples) < 5:
                trail = " ".join(out.trail.get(m.n, []))
                rep.examples.append(f"{m.channel} #{m.n} ({m.user}): {problem} {trail}")
    finally:
        await storage.close_db()
    return list(reports.values())
