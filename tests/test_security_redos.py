"""Issue #23 finding 2: a reviewer's regex must not be able to stall the service (ReDoS).

Before: ``(a+)+$`` saved as a watched word ran on Python's backtracking ``re`` on the event
loop; a 24-character message took 1.3 s and doubled with every character, and /healthz
waited for it. Now patterns run on RE2 (linear time), long texts off the loop.
"""

from __future__ import annotations

import asyncio
import time

from community.moderation.matcher import PatternError, Rule, WatchList, compile_rule
from community.moderation.models import WatchedWord
from tests.community_helpers import chat, csrf, staff_login


async def _probe(client, stop: asyncio.Event) -> list[float]:  # type: ignore[no-untyped-def]
    latencies = []
    while not stop.is_set():
        t0 = time.perf_counter()
        assert (await client.get("/healthz")).status == 200
        latencies.append(time.perf_counter() - t0)
        await asyncio.sleep(0.01)
    return latencies


async def test_catastrophic_pattern_does_not_stall_healthz(client) -> None:
    await staff_login(client, "rev", ["reviewer"])
    _, token = await csrf(client, "/admin/moderation")
    saved = await client.post(
        "/admin/moderation/words",
        data={"pattern": "(a+)+$", "kind": "regex", "action": "block", "csrf_token": token},
        allow_redirects=False,
    )
    assert saved.status == 303
    assert await WatchedWord.filter(pattern="(a+)+$").exists()
    stop = asyncio.Event()
    probe = asyncio.create_task(_probe(client, stop))
    await asyncio.sleep(0.05)
    # 30 characters: 2^30 steps for a backtracking engine (minutes); RE2 answers in microseconds
    replies = await chat(client, "attacker", text="/ask " + "a" * 30 + "!")
    stop.set()
    latencies = await probe
    print(f"/healthz max {max(latencies):.3f}s over {len(latencies)} probes during the hostile message")
    assert replies  # answered, not hung
    assert max(latencies) < 1.0, max(latencies)
    # and the rule still works where it matches
    blocked = await chat(client, "attacker", text="/ask why " + "a" * 30)
    assert (
        "could not be posted" in blocked[0]["text"] or "无法发布" in blocked[0]["text"] or "不能" in blocked[0]["text"]
    )


async def test_unsupported_pattern_gets_a_clear_translated_error(client) -> None:
    await staff_login(client, "rev2", ["reviewer"])
    _, token = await csrf(client, "/admin/moderation?lang=zh_CN")
    resp = await client.post(
        "/admin/moderation/words?lang=zh_CN",
        data={"pattern": r"(a)\1", "kind": "regex", "action": "block", "csrf_token": token},
    )
    assert resp.status == 400
    html = await resp.text()
    assert "不支持反向引用" in html and "Traceback" not in html
    assert not await WatchedWord.filter(pattern=r"(a)\1").exists()


def test_matching_is_linear_on_long_hostile_text() -> None:
    wl = WatchList(
        [
            Rule(1, "(a+)+$", "regex", "block"),
            Rule(2, "(x|x)*y", "regex", "flag"),
            Rule(3, "a*a*a*a*a*a*a*a*b", "wildcard", "flag"),
        ]
    )
    t0 = time.perf_counter()
    verdict = wl.check("a" * 20_000 + "!")
    assert verdict.action == "allow"
    assert time.perf_counter() - t0 < 2.0  # backtracking would never finish
    assert wl.check("say aaaa").action == "block"


def test_lookarounds_and_backreferences_are_refused() -> None:
    for pattern in (r"(a)\1", r"foo(?=bar)", r"(?<!x)y"):
        try:
            compile_rule(Rule(0, pattern, "regex", "flag"))
        except PatternError as exc:
            assert "Back-references" in str(exc)
        else:
            raise AssertionError(pattern)
