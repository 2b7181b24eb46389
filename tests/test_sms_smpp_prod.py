"""SMPP with several workers (Redis): one bind per account, handed over when the holder
dies; multi-part texts joined in Redis whichever worker gets each part."""

from __future__ import annotations

import asyncio
import random
from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bot.core.redis_stores import make_redis
from sms_gateway.bind_lease import BindLease, hold_bind
from sms_gateway.encoding import Concat, split_udh
from sms_gateway.join_buffer import RedisJoinBuffer
from sms_gateway.smpp import SmppConfig, SmppEsme
from tests.fakes.smsc import FakeSmsc

LEASE = 0.6


@pytest_asyncio.fixture
async def smsc() -> AsyncIterator[FakeSmsc]:
    fake = FakeSmsc()
    await fake.start()
    yield fake
    await fake.stop()


@pytest_asyncio.fixture
async def redis(fresh_redis_url: str):  # type: ignore[no-untyped-def]
    r = make_redis(fresh_redis_url)
    yield r
    await r.aclose()


class Worker:
    """One worker's share of the SMPP wiring: the lease loop and the session it opens."""

    def __init__(self, smsc: FakeSmsc, redis, name: str) -> None:  # type: ignore[no-untyped-def]
        self.smsc, self.name = smsc, name
        self.lease = BindLease(redis, "everycsr", LEASE)
        self.esme: SmppEsme | None = None
        self.binds = 0
        self.task: asyncio.Task[None] | None = None

    async def bind(self) -> None:
        cfg = SmppConfig(
            host="127.0.0.1",
            port=self.smsc.port,
            system_id="everycsr",
            password="pw",
            source_addr="10086",
            reconnect_min=0.05,
        )
        self.esme = SmppEsme(cfg)
        self.binds += 1
        await self.esme.start()

    async def unbind(self) -> None:
        if self.esme is not None:
            await self.esme.stop()
            self.esme = None

    def start(self) -> None:
        self.task = asyncio.create_task(hold_bind(self.lease, self.bind, self.unbind))

    @property
    def bound(self) -> bool:
        return self.esme is not None and self.esme.connected.is_set()

    def kill9(self) -> None:
        """The process dies: no unbind, no release, the socket just goes."""
        assert self.task is not None
        if self.esme is not None and self.esme._client is not None:
            self.esme._client.abort()
        self.lease.release = _nothing  # type: ignore[method-assign]
        self.unbind = _nothing  # type: ignore[method-assign]
        self.task.cancel()


async def _nothing() -> None:
    return None


async def test_one_bind_across_workers_and_a_takeover_when_the_holder_dies(smsc: FakeSmsc, redis) -> None:  # type: ignore[no-untyped-def]
    workers = [Worker(smsc, redis, f"w{i}") for i in range(3)]
    for w in workers:
        w.start()
    try:
        for _ in range(30):  # 1.5 s: several lease periods
            await asyncio.sleep(0.05)
            assert sum(w.bound for w in workers) <= 1
        [holder] = [w for w in workers if w.bound]
        assert sum(w.binds for w in workers) == 1
        fence = holder.lease.fence
        holder.kill9()
        loop = asyncio.get_running_loop()
        t0 = loop.time()
        while not any(w.bound for w in workers if w is not holder):
            assert loop.time() - t0 < LEASE + 3, "nobody took the bind over"
            await asyncio.sleep(0.02)
        [heir] = [w for w in workers if w.bound]
        assert heir.lease.fence > fence  # a later fence: the dead holder's token cannot renew
        assert not await holder.lease.renew()
        for _ in range(20):
            await asyncio.sleep(0.05)
            assert sum(w.bound for w in workers) == 1
    finally:
        for w in workers:
            if w.task is not None and not w.task.done():
                w.task.cancel()
        await asyncio.gather(*[w.task for w in workers if w.task], return_exceptions=True)


async def test_a_holder_that_loses_its_lease_unbinds(smsc: FakeSmsc, redis) -> None:  # type: ignore[no-untyped-def]
    w = Worker(smsc, redis, "w")
    w.start()
    try:
        for _ in range(100):
            if w.bound:
                break
            await asyncio.sleep(0.02)
        assert w.bound
        await redis.set(w.lease.key, b"999:other")  # another worker holds it now (Redis lost the key)
        await asyncio.sleep(LEASE)
        assert w.esme is None  # unbound at its next renewal
    finally:
        w.task.cancel()  # type: ignore[union-attr]
        await asyncio.gather(w.task, return_exceptions=True)  # type: ignore[arg-type]


def parts_of(text: str, size: int = 20, ref: int = 7) -> list[tuple[Concat, bytes]]:
    raw = text.encode("utf-16-be")
    chunks = [raw[i : i + size] for i in range(0, len(raw), size)]
    out = []
    for seq, chunk in enumerate(chunks, 1):
        udh = bytes([6, 0x08, 4, ref >> 8, ref & 0xFF, len(chunks), seq])
        concat, body = split_udh(udh + chunk)
        assert concat is not None
        out.append((concat, body))
    return out


@pytest.mark.parametrize("seed", range(5))
async def test_parts_on_different_workers_join_exactly_once(redis, seed: int) -> None:  # type: ignore[no-untyped-def]
    rnd = random.Random(seed)
    text = "我想问一下" + "𠀀😀" * rnd.randint(3, 12) + "流量怎么查"
    parts = parts_of(text)
    deliveries = parts + [rnd.choice(parts) for _ in range(2)]  # some parts redelivered
    rnd.shuffle(deliveries)
    buffers = [RedisJoinBuffer(redis), RedisJoinBuffer(redis)]  # two workers
    results = await asyncio.gather(
        *[buffers[i % 2].add("+8613800138000", c, b, 8) for i, (c, b) in enumerate(deliveries)]
    )
    whole = [r for r in results if r is not None]
    # once the text is whole, a late redelivered part starts a new (incomplete) buffer
    assert whole == [text]


async def test_a_bogus_part_number_never_completes_a_text(redis) -> None:  # type: ignore[no-untyped-def]
    buf = RedisJoinBuffer(redis)
    assert await buf.add("+86138", Concat(ref=1, total=2, seq=3), b"\x00a", 8) is None
    assert await buf.add("+86138", Concat(ref=1, total=2, seq=1), b"\x00b", 8) is None
    assert await buf.add("+86138", Concat(ref=1, total=2, seq=2), b"\x00c", 8) == "bc"


async def test_the_channel_binds_only_in_one_sending_process(smsc: FakeSmsc, redis, tmp_path) -> None:  # type: ignore[no-untyped-def]
    """The SMS channel's wiring with Redis: web processes never bind, of the sending
    processes only the lease holder does, and another takes over when it stops."""
    from types import SimpleNamespace

    from aiohttp import web

    from bot.core.app_keys import PROCESS_ROLE
    from bot.core.redis_stores import RedisDedupStore
    from sms_gateway.channel import SmsRuntime, _start_smpp
    from tests.conftest import make_settings

    settings = make_settings(
        tmp_path,
        redis_url="redis://unused",
        sms_provider="smpp",
        smpp_host="127.0.0.1",
        smpp_port=smsc.port,
        smpp_system_id="everycsr",
        smpp_password="pw",
        sms_from="10086",
        smpp_bind_lease_seconds=LEASE,
    )
    services = SimpleNamespace(dedup=RedisDedupStore(redis), redis=redis)
    runtimes = []
    for role in ("web", "worker", "worker", "both"):
        app = web.Application()
        app[PROCESS_ROLE] = role
        runtime = SmsRuntime(settings)
        await _start_smpp(app, services, runtime, settings)  # type: ignore[arg-type]
        runtimes.append(runtime)
    try:
        assert runtimes[0].bind_task is None and isinstance(runtimes[0].join, RedisJoinBuffer)
        for _ in range(30):
            await asyncio.sleep(0.05)
            assert sum(bool(r.esme and r.esme.connected.is_set()) for r in runtimes) <= 1
        assert smsc.binds == ["everycsr"]
        [holder] = [r for r in runtimes if r.esme and r.esme.connected.is_set()]
        holder.bind_task.cancel()  # type: ignore[union-attr]  (a clean stop: unbind, release)
        await asyncio.gather(holder.bind_task, return_exceptions=True)  # type: ignore[arg-type]
        for _ in range(100):
            if len(smsc.binds) == 2:
                break
            await asyncio.sleep(0.05)
        assert smsc.binds == ["everycsr", "everycsr"]
        assert sum(bool(r.esme and r.esme.connected.is_set()) for r in runtimes) == 1
    finally:
        for r in runtimes:
            if r.bind_task is not None:
                r.bind_task.cancel()
                await asyncio.gather(r.bind_task, return_exceptions=True)
            elif r.esme is not None:
                await r.esme.stop()
