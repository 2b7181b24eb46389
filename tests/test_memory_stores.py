"""The in-process stores' expiring map: reads as a plain TTL dict, and stays bounded."""

from __future__ import annotations

import asyncio

from hypothesis import given, strategies as st

from bot.core.stores import MemoryDedupStore, MemoryRateLimiter, TTLMap

KEYS = st.sampled_from(["a", "b", "c", "d", "e", "f"])
OPS = st.lists(
    st.one_of(
        st.tuples(st.just("set"), KEYS, st.integers(0, 99)),
        st.tuples(st.just("pop"), KEYS, st.just(0)),
        st.tuples(st.just("tick"), st.just(""), st.integers(1, 15)),
    ),
    max_size=80,
)


@given(OPS, st.sampled_from([5.0, 10.0]))
def test_ttl_map_reads_like_a_dict_with_expiry_and_drops_expired_entries(ops, ttl: float) -> None:
    now = [0.0]
    m = TTLMap(clock=lambda: now[0])
    model: dict[str, tuple[float, int]] = {}
    for op, key, n in ops:
        if op == "tick":
            now[0] += n
        elif op == "pop":
            assert m.pop(key) == (model[key][1] if key in model else None)
            model.pop(key, None)
        else:
            expired_before = sum(1 for exp, _ in model.values() if exp < now[0])
            m.set(key, n, ttl)
            model[key] = (now[0] + ttl, n)
            # what the map still holds: every live key, and fewer expired ones than before
            held = {k: v for k, v in model.items() if k in m._data}
            assert all(k in held for k, (exp, _) in model.items() if exp >= now[0])
            expired_after = sum(1 for exp, _ in held.values() if exp < now[0])
            assert expired_after <= max(0, expired_before - 1)
            model = held
        for k in "abcdef":
            live = model.get(k)
            assert m.get(k) == (live[1] if live and live[0] >= now[0] else None)


def test_a_day_of_dedup_keys_still_answers_retries() -> None:
    """Past the old 10,000-key mark (where every claim scanned the whole store) retries are
    still recognised and handed the first result."""
    store = MemoryDedupStore()

    async def fill() -> None:
        for i in range(30_000):
            claim = await store.claim(f"web:{i}", 6, 86_400)
            assert claim.status == "owner"
            await store.finish(f"web:{i}", claim.token, "[]", 86_400)
        assert (await store.claim("web:7", 6, 86_400)).result == "[]"
        assert await store.wait_result("web:7", timeout=0.1) == "[]"
        assert store._claims.get("web:7").done is None  # answered keys keep no Event

        # a retry waiting while the first is processed is woken with its answer
        late = await store.claim("web:late", 6, 86_400)
        assert late.status == "owner"
        waiter = asyncio.create_task(store.wait_result("web:late", timeout=5))
        await asyncio.sleep(0)
        await store.finish("web:late", late.token, '["ok"]', 86_400)
        assert await waiter == '["ok"]'

    asyncio.run(fill())
    assert len(store._claims) == 30_001


RESERVES = st.lists(
    st.one_of(
        st.tuples(st.just("reserve"), KEYS, st.sampled_from([0.5, 1.0, 30.0]), st.sampled_from([1.0, 3.0])),
        st.tuples(st.just("tick"), st.just(""), st.floats(0.01, 5.0), st.just(0.0)),
    ),
    max_size=80,
)


@given(RESERVES)
def test_rate_limiter_paces_like_gcra_and_forgets_passed_keys(ops) -> None:
    """Delays equal an unbounded GCRA model's, and a key whose slot has passed holds no memory."""
    now = [100.0]
    limiter = MemoryRateLimiter(clock=lambda: now[0])
    model: dict[str, float] = {}

    async def run() -> None:
        for op, key, rate, burst in ops:
            if op == "tick":
                now[0] += rate
                continue
            interval = 1.0 / rate
            tat = max(model.get(key, now[0]), now[0])
            expect = max(0.0, tat - (burst - 1) * interval - now[0])
            model[key] = tat + interval
            assert abs(await limiter.reserve(key, rate, burst) - expect) < 1e-9
        now[0] += 1000.0  # every slot long past
        await limiter.reserve("z", 1.0)
        await limiter.reserve("z", 1.0)  # the limiter drops expired keys as it is used
        assert len(limiter) <= max(1, len(set(model)) - 1)

    asyncio.run(run())


def test_rate_limiter_memory_stays_with_the_chats_paced_now() -> None:
    now = [0.0]
    limiter = MemoryRateLimiter(clock=lambda: now[0])

    async def run() -> None:
        for i in range(20_000):  # one message to each of 20,000 chats, 1 ms apart
            assert await limiter.reserve(f"chat:{i}", rate=1.0) == 0.0
            now[0] += 0.001
        # a chat is paced for 1 s after its message: ~1,000 are still held, not 20,000
        assert len(limiter) <= 1_100
        assert await limiter.reserve("chat:19999", rate=1.0) > 0.9

    asyncio.run(run())
