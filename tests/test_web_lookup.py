"""Staff pages answer an unknown or absurd id in the URL with 404, never a 500."""

from __future__ import annotations

from bot.staff.auth import create_staff


async def test_unknown_and_overlong_ids_are_404(client) -> None:  # type: ignore[no-untyped-def]
    await create_staff("root", "secret-pass-1", ["admin"])
    resp = await client.post(
        "/login", data={"username": "root", "password": "secret-pass-1", "next": "/staff"}, allow_redirects=False
    )
    assert resp.status == 302
    huge = "9" * 30
    for path in (
        f"/admin/offers/{huge}",
        "/admin/offers/424242",
        f"/inbox/t/{huge}",
        "/inbox/t/424242",
        f"/admin/knowledge/{huge}",
        "/admin/knowledge/424242",
    ):
        r = await client.get(path)
        assert r.status == 404, path
        assert "No such" in await r.text(), path
