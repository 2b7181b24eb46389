"""Staff login: hashed passwords, sessions, CSRF and roles."""

from __future__ import annotations

from aiohttp import web

from bot.staff.auth import create_staff, require_role
from bot.staff.models import StaffUser


async def login(client, username: str, password: str = "secret-pass-1"):  # type: ignore[no-untyped-def]
    return await client.post(
        "/login", data={"username": username, "password": password, "next": "/staff"}, allow_redirects=False
    )


async def test_password_is_hashed_and_login_works(client) -> None:
    await create_staff("alice", "secret-pass-1", ["agent"])
    user = await StaffUser.get(username="alice")
    assert "secret-pass-1" not in user.password_hash and user.password_hash.startswith("$argon2")
    bad = await login(client, "alice", "wrong-password")
    assert bad.status == 401
    ok = await login(client, "alice")
    assert ok.status == 302 and ok.headers["Location"] == "/staff"
    home = await client.get("/staff")
    assert home.status == 200
    assert "alice" in await home.text() or "Hello" in await home.text() or "您好" in await home.text()


async def test_unknown_user_and_anonymous_access(client) -> None:
    assert (await login(client, "nobody")).status == 401
    resp = await client.get("/staff", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"].startswith("/login?next=")


async def test_open_redirect_is_refused(client) -> None:
    await create_staff("bob", "secret-pass-1", ["agent"])
    resp = await client.post(
        "/login",
        data={"username": "bob", "password": "secret-pass-1", "next": "//evil.example/x"},
        allow_redirects=False,
    )
    assert resp.headers["Location"] == "/staff"


async def test_logout_needs_csrf(client) -> None:
    await create_staff("carol", "secret-pass-1", ["agent"])
    await login(client, "carol")
    refused = await client.post("/logout", data={}, allow_redirects=False)
    assert refused.status == 403
    assert (await client.get("/staff", allow_redirects=False)).status == 200


async def test_role_check_on_decorated_handler() -> None:
    user = StaffUser(username="x", password_hash="", roles=["agent"])
    assert user.has_role("agent") and not user.has_role("admin", "marketer")
    admin = StaffUser(username="y", password_hash="", roles=["admin"])
    assert admin.has_role("marketer")
    assert callable(require_role("admin")(lambda r: web.Response()))  # type: ignore[arg-type,return-value]


async def test_weak_password_and_unknown_role_rejected(client) -> None:
    import pytest

    with pytest.raises(ValueError):
        await create_staff("dave", "short", ["agent"])
    with pytest.raises(ValueError):
        await create_staff("dave", "long-enough-pass", ["superuser"])
