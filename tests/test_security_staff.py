"""Staff security (issues #19 and #23): login throttle and lockout, login CSRF, session
rotation, sessions ended by a password change, hashing off the event loop, security headers,
the audit log. Everything through HTTP against the real app."""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from bot.staff.auth import _DUMMY_HASH, _verify, create_staff
from bot.staff.models import StaffAudit, StaffSession
from tests.conftest import make_settings

PASSWORD = "secret-pass-1"


async def form_token(client) -> str:  # type: ignore[no-untyped-def]
    page = await client.get("/login")
    m = re.search(r'name="csrf_token" value="([^"]+)"', await page.text())
    assert m, "the login form carries a CSRF token"
    return m.group(1)


async def browser_login(client, username: str, password: str = PASSWORD, **extra):  # type: ignore[no-untyped-def]
    """As a browser posts the form: its token, and an Origin header naming the site."""
    token = await form_token(client)
    origin = f"http://{client.server.host}:{client.server.port}"
    return await client.post(
        "/login",
        data={"username": username, "password": password, "next": "/staff", "csrf_token": token, **extra},
        headers={"Origin": origin},
        allow_redirects=False,
    )


async def _eventually(check, timeout: float = 5.0) -> bool:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await check():
        if time.monotonic() > deadline:
            return False
        await asyncio.sleep(0.02)
    return True


async def test_wrong_passwords_lock_the_account_even_for_the_right_one(client) -> None:
    await create_staff("alice", PASSWORD, ["agent"])
    for _ in range(5):  # BOT_LOGIN_MAX_FAILURES_PER_ACCOUNT
        resp = await browser_login(client, "alice", "wrong-password")
        assert resp.status == 401
    locked = await browser_login(client, "alice")  # the right password, too late
    assert locked.status == 429
    assert int(locked.headers["Retry-After"]) > 0
    assert "15" in await locked.text()  # says how long
    assert "everycsr_staff" not in locked.cookies
    assert await _eventually(StaffAudit.filter(action="login.locked", username="alice").exists)
    # translated
    zh = await client.post("/login?lang=zh_CN", data={"username": "alice", "password": PASSWORD}, allow_redirects=False)
    assert zh.status == 429 and "分钟" in await zh.text()


async def test_a_burst_of_parallel_guesses_gets_no_more_tries(client) -> None:
    """A script firing 30 logins at once: each is counted before its hash, so 5 are checked."""
    from bot.staff import auth

    await create_staff("burst", PASSWORD, ["agent"])
    checked = []
    real = auth._verify

    def counting(stored: str, password: str) -> bool:
        checked.append(password)
        return real(stored, password)

    auth._verify = counting  # type: ignore[assignment]
    try:
        statuses = [
            r.status
            for r in await asyncio.gather(
                *[
                    client.post("/login", data={"username": "burst", "password": f"guess-{i}"}, allow_redirects=False)
                    for i in range(30)
                ]
            )
        ]
    finally:
        auth._verify = real  # type: ignore[assignment]
    assert len(checked) == 5 and statuses.count(401) == 5 and statuses.count(429) == 25


async def test_successes_do_not_use_up_the_address(client) -> None:
    await create_staff("office", PASSWORD, ["agent"])
    for _ in range(25):  # more than BOT_LOGIN_MAX_FAILURES_PER_IP, all good
        resp = await client.post("/login", data={"username": "office", "password": PASSWORD}, allow_redirects=False)
        assert resp.status == 302


async def test_one_address_guessing_many_accounts_is_locked(tmp_path) -> None:  # type: ignore[no-untyped-def]
    from aiohttp.test_utils import TestClient, TestServer

    from bot.app import create_app

    app = create_app(make_settings(tmp_path, login_max_failures_per_ip=6), db_setup="schema")
    async with TestClient(TestServer(app)) as c:
        await create_staff("bob", PASSWORD, ["agent"])
        for i in range(6):
            assert (await browser_login(c, f"guess{i}", "nope-nope")).status == 401
        assert (await browser_login(c, "bob")).status == 429  # bob's own count is 0: the address is locked


async def test_login_csrf_token_required_from_browsers(client) -> None:
    await create_staff("carol", PASSWORD, ["agent"])
    origin = f"http://{client.server.host}:{client.server.port}"
    # a browser post without the form's token (a cross-site login form, or a stale page)
    no_token = await client.post(
        "/login", data={"username": "carol", "password": PASSWORD}, headers={"Origin": origin}, allow_redirects=False
    )
    assert no_token.status == 403
    forged = await client.post(
        "/login",
        data={"username": "carol", "password": PASSWORD, "csrf_token": "x" * 64},
        headers={"Sec-Fetch-Site": "same-origin"},
        allow_redirects=False,
    )
    assert forged.status == 403
    cross = await client.post(
        "/login",
        data={"username": "carol", "password": PASSWORD, "csrf_token": await form_token(client)},
        headers={"Origin": "https://evil.example"},
        allow_redirects=False,
    )
    assert cross.status == 403
    assert "everycsr_staff" not in cross.cookies


async def test_login_rotates_the_session(client) -> None:
    await create_staff("dave", PASSWORD, ["agent"])
    first = await browser_login(client, "dave")
    old_cookie = first.cookies["everycsr_staff"].value
    second = await browser_login(client, "dave")
    new_cookie = second.cookies["everycsr_staff"].value
    assert old_cookie != new_cookie
    assert await StaffSession.filter(staff__username="dave").count() == 1  # the old one is gone
    assert (await client.get("/staff", allow_redirects=False)).status == 200  # the new cookie works
    client.session.cookie_jar.clear()
    stale = await client.get("/staff", headers={"Cookie": f"everycsr_staff={old_cookie}"}, allow_redirects=False)
    assert stale.status == 302  # the old one does not


async def test_password_change_ends_every_session(client) -> None:
    await create_staff("erin", PASSWORD, ["agent"])
    assert (await browser_login(client, "erin")).status == 302
    assert (await client.get("/staff", allow_redirects=False)).status == 200
    await create_staff("erin", "a-new-password-2", ["agent"])  # `python -m bot staff add erin` again
    assert (await client.get("/staff", allow_redirects=False)).status == 302


async def test_security_headers_on_pages_and_redirects(client) -> None:
    for path in ("/login", "/chat", "/staff", "/healthz"):
        resp = await client.get(path, allow_redirects=False)
        csp = resp.headers["Content-Security-Policy"]
        assert "frame-ancestors" in csp and "script-src 'self' 'nonce-" in csp, path
        assert resp.headers["X-Frame-Options"] in ("DENY", "SAMEORIGIN")
        assert resp.headers["X-Content-Type-Options"] == "nosniff"
        assert resp.headers["Referrer-Policy"] == "same-origin"
        assert "Strict-Transport-Security" not in resp.headers  # plain http here
    staff = await client.get("/login")
    assert "frame-ancestors 'none'" in staff.headers["Content-Security-Policy"]
    assert staff.headers["X-Frame-Options"] == "DENY"


async def test_audit_log_records_who_did_what(client) -> None:
    await create_staff("frank", PASSWORD, ["agent"])
    await browser_login(client, "frank", "wrong-password")
    assert await _eventually(
        StaffAudit.filter(username="frank", action="login.failed").exists
    )  # written after the answer
    await browser_login(client, "frank")
    rows = await StaffAudit.filter(username="frank").order_by("id")
    assert [r.action for r in rows] == ["login.failed", "login"]
    assert rows[1].staff_id is not None and rows[1].ip == "127.0.0.1"


async def _probe(client, stop: asyncio.Event) -> list[float]:  # type: ignore[no-untyped-def]
    latencies = []
    while not stop.is_set():
        t0 = time.perf_counter()
        resp = await client.get("/healthz")
        assert resp.status == 200
        latencies.append(time.perf_counter() - t0)
        await asyncio.sleep(0.01)
    return latencies


async def test_healthz_stays_fast_while_bad_logins_hash(client) -> None:
    """Issue #23 finding 3: argon2 ran on the event loop; 12 bad logins stalled everything."""
    t0 = time.perf_counter()
    _verify(_DUMMY_HASH, "x")
    one_hash = time.perf_counter() - t0
    stop = asyncio.Event()
    probe = asyncio.create_task(_probe(client, stop))
    await asyncio.sleep(0.05)
    started = time.perf_counter()
    attack = await asyncio.gather(*[browser_login(client, f"nobody{i}", "wrong-password") for i in range(12)])
    attack_time = time.perf_counter() - started
    stop.set()
    latencies = await probe
    print(
        f"one argon2 check {one_hash:.3f}s; 12 bad logins {attack_time:.3f}s; /healthz max {max(latencies):.3f}s "
        f"over {len(latencies)} probes"
    )
    assert all(r.status == 401 for r in attack)
    assert attack_time >= 4 * one_hash  # the attack really ran (two hashing threads)
    assert len(latencies) >= 3
    # on the loop, one /healthz waited for every hash queued before it (~12 x one_hash)
    assert max(latencies) < 3 * one_hash, (max(latencies), one_hash)


@pytest.mark.parametrize("unknown", [True, False])
async def test_unknown_users_cost_a_hash_too(client, unknown: bool) -> None:
    """No user enumeration by timing: the dummy hash runs for unknown names."""
    from bot.staff import auth

    calls = []
    real = auth._verify

    def counting(stored: str, password: str) -> bool:
        calls.append(stored == _DUMMY_HASH)
        return real(stored, password)

    auth._verify = counting  # type: ignore[assignment]
    try:
        if not unknown:
            await create_staff("gina", PASSWORD, ["agent"])
        assert (await browser_login(client, "gina", "wrong-password")).status == 401
    finally:
        auth._verify = real  # type: ignore[assignment]
    assert calls == [unknown]


async def test_staff_actions_across_the_admin_pages_are_audited(client) -> None:
    from community.inbox.models import Ticket
    from tests.community_helpers import chat, csrf, staff_login

    await chat(client, "member-a", text="人工")
    ticket = await Ticket.filter().order_by("-id").first()
    assert ticket is not None
    await staff_login(client, "boss", ["admin"])
    _, token = await csrf(client, f"/inbox/t/{ticket.id}")
    assert (
        await client.post(f"/inbox/t/{ticket.id}/claim", data={"csrf_token": token}, allow_redirects=False)
    ).status in (302, 303)
    _, token = await csrf(client, "/admin/rewards")
    assert (
        await client.post(
            "/admin/rewards",
            data={
                "csrf_token": token,
                "name": "10 MB",
                "kind": "data",
                "cost": "50",
                "stock": "5",
                "per_member_limit": "1",
                "face_value": "10",
                "active": "on",
            },
            allow_redirects=False,
        )
    ).status == 303
    _, token = await csrf(client, "/admin/moderation")
    assert (
        await client.post(
            "/admin/moderation/words",
            data={"csrf_token": token, "pattern": "spam", "kind": "word", "action": "flag"},
            allow_redirects=False,
        )
    ).status == 303
    rows = {(r.action, r.target_type) for r in await StaffAudit.filter(username="boss")}
    assert {("ticket.claim", "ticket"), ("reward.save", "reward"), ("moderation.word_add", "word")} <= rows
    claim = await StaffAudit.get(username="boss", action="ticket.claim")
    assert claim.target_id == str(ticket.id) and claim.detail == {"ok": True}
    page = await client.get("/admin/audit?target_type=ticket")
    assert page.status == 200 and "ticket.claim" in await page.text() and "reward.save" not in await page.text()
