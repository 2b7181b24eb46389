"""BOT_EMBEDDINGS_URL: an OpenAI-compatible /v1/embeddings server in place of the packaged
encoder, against a loopback server speaking that API (tests/fakes/embeddings_api.py): the
knowledge base is embedded through it, unsure questions consult it, and when it fails or
hangs the lexical path answers and the circuit breaker stops calling it."""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.core.app_keys import SERVICES
from community.search.remote import CircuitBreaker, EmbeddingsUnavailable, RemoteEncoder
from tests.community_helpers import chat
from tests.conftest import load_sample_kb, make_settings
from tests.fakes.embeddings_api import DIM, FakeEmbeddingsServer

UNSURE = "流量还剩多少怎么看"  # the lexical path is not sure of this one: the encoder is consulted


@pytest_asyncio.fixture
async def server() -> AsyncIterator[FakeEmbeddingsServer]:
    s = FakeEmbeddingsServer()
    await s.start()
    yield s
    await s.stop()


async def _app(tmp_path: Path, server: FakeEmbeddingsServer, **over: object):  # type: ignore[no-untyped-def]
    settings = make_settings(
        tmp_path,
        embeddings_url=server.url,
        embeddings_model="bge-m3",
        embeddings_key=server.key,
        embeddings_timeout_seconds=0.5,
        **over,
    )
    return create_app(settings, db_setup="schema")


async def _embedded(kb, timeout: float = 20.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while kb.matcher.semantic_pending or not kb.matcher.semantic_ready:
        assert time.monotonic() < deadline, "knowledge base never embedded"
        await asyncio.sleep(0.05)


async def test_the_knowledge_base_is_embedded_by_the_server_and_unsure_questions_consult_it(tmp_path, server):
    app = await _app(tmp_path, server)
    async with TestClient(TestServer(app)) as client:
        await load_sample_kb(app)
        kb = app[SERVICES].kb
        assert kb.matcher.encoder_remote
        await _embedded(kb)
        assert server.unauthorised == 0
        assert "怎么查询剩余流量" in server.inputs  # the items' phrasings, normalised
        before = len(server.inputs)
        [reply] = await chat(client, "m1", text=UNSURE, locale="zh_CN")
        assert reply["kind"] in ("answer", "suggest")
        assert len(server.inputs) == before + 1  # the question itself, once
        # a question the lexical path is sure of never reaches the server (the cascade)
        [reply] = await chat(client, "m2", text="怎么查询剩余流量", locale="zh_CN")
        assert reply["kind"] == "answer" and len(server.inputs) == before + 1


async def test_a_failing_server_falls_back_to_the_lexical_path_and_opens_the_circuit(tmp_path, server):
    app = await _app(tmp_path, server)
    lexical_app = create_app(make_settings(tmp_path / "lexical"), db_setup="schema")
    (tmp_path / "lexical").mkdir()
    texts = [UNSURE + "呀" * i for i in range(3)]  # distinct questions: none is remembered
    async with TestClient(TestServer(lexical_app)) as lexical:
        await load_sample_kb(lexical_app)
        want = [(await chat(lexical, f"m{i}", text=t, locale="zh_CN"))[0] for i, t in enumerate(texts)]
    async with TestClient(TestServer(app)) as client:
        await load_sample_kb(app)
        kb = app[SERVICES].kb
        await _embedded(kb)
        server.fail = True
        breaker = kb.matcher.config.encoder.breaker
        assert breaker.failures == len(texts)
        for i, t in enumerate(texts):
            got = await chat(client, f"f{i}", text=t, locale="zh_CN")
            assert got[0]["kind"] == want[i]["kind"]  # the lexical decision, no error
            assert got[0]["text"] == want[i]["text"]
        assert breaker.is_open
        calls = server.requests
        got = await chat(client, "f-open", text=UNSURE + "吗", locale="zh_CN")
        assert got[0]["kind"] in ("answer", "suggest")
        assert server.requests == calls  # open: the server is left alone


async def test_a_hanging_server_times_out_and_the_member_still_gets_an_answer(tmp_path, server):
    app = await _app(tmp_path, server)
    async with TestClient(TestServer(app)) as client:
        await load_sample_kb(app)
        kb = app[SERVICES].kb
        await _embedded(kb)
        server.delay = 3.0
        started = time.monotonic()
        [reply] = await chat(client, "m1", text=UNSURE, locale="zh_CN")
        assert time.monotonic() - started < 2.5  # the 0.5 s timeout, not the server's 3 s
        assert reply["kind"] in ("answer", "suggest")


async def test_a_dead_server_at_start_leaves_the_lexical_matcher_answering(tmp_path):
    server = FakeEmbeddingsServer(fail=True)
    await server.start()
    try:
        app = await _app(tmp_path, server)
        async with TestClient(TestServer(app)) as client:
            await load_sample_kb(app)
            [reply] = await chat(client, "m1", text="怎么查询剩余流量", locale="zh_CN")
            assert reply["kind"] == "answer"
            assert not app[SERVICES].kb.matcher.semantic_ready
    finally:
        await server.stop()


async def test_remote_encoder_wire_format_and_breaker(server):
    enc = RemoteEncoder(
        server.url, model="bge-m3", key=server.key, timeout=1.0, breaker=CircuitBreaker(failures=2, cooldown=60.0)
    )
    try:
        vecs = await enc.aembed(["流量", "话费"])
        assert vecs.shape == (2, DIM) and enc.dim == DIM
        assert abs(float((vecs[0] ** 2).sum()) - 1.0) < 1e-5
        bad = RemoteEncoder(server.url, key="wrong", timeout=1.0)
        with pytest.raises(EmbeddingsUnavailable):
            await bad.aembed(["x"])
        await bad.close()
        server.fail = True
        for _ in range(2):
            assert await enc.aembed_query("流量") is None
        assert enc.breaker.is_open
        n = server.requests
        assert await enc.aembed_query("流量") is None and server.requests == n
    finally:
        await enc.close()


def test_circuit_breaker_half_open_lets_one_trial_through():
    now = [0.0]
    b = CircuitBreaker(failures=2, cooldown=10.0, clock=lambda: now[0])
    b.failure()
    assert b.allow()
    b.failure()
    assert not b.allow() and b.is_open
    now[0] = 11.0
    assert b.allow()  # the trial
    assert not b.allow()  # only one while it is out
    b.failure()
    assert not b.allow()  # reopened
    now[0] = 22.0
    assert b.allow()
    b.success()
    assert b.allow() and b.allow() and not b.is_open
