"""Reading a forwarded answer as a browser does: GET the page, then post its form."""

from __future__ import annotations

import re
from typing import Any

from bot.core.app_keys import SERVICES
from bot.web.chat_session import COOKIE, csrf_for_session, session_id_from_cookie

CSRF = re.compile(r'name="csrf_token" value="([^"]*)"')


def own_origin(client: Any) -> str:
    """The origin of the test server's own pages (what a browser sends with their forms)."""
    return str(client.make_url("")).rstrip("/")


def session_token(client: Any) -> str:
    """The form token of the client's session cookie (a page that shows no form any more,
    posted again from the browser's back button)."""
    settings = client.app[SERVICES].settings
    cookie = next((c.value for c in client.session.cookie_jar if c.key == COOKIE), None)
    sid = session_id_from_cookie(settings.secret_key, cookie)
    assert sid is not None, "no session cookie"
    return csrf_for_session(settings.secret_key, sid)


async def open_forward(client: Any, token: str, headers: dict[str, str] | None = None) -> str:
    """GET /f/<token> and return the form token the page carries (or its session's)."""
    page = await client.get(f"/f/{token}", headers=headers or {})
    assert page.status == 200, page.status
    found = CSRF.search(await page.text())
    return found.group(1) if found else session_token(client)


async def tap_helped(client: Any, token: str, headers: dict[str, str] | None = None) -> Any:
    """Open the page and tap "this helped me", from the page's own origin."""
    csrf = await open_forward(client, token, headers)
    return await client.post(
        f"/f/{token}/read", data={"csrf_token": csrf}, headers={"Origin": own_origin(client), **(headers or {})}
    )


async def tap_rating(client: Any, token: str, accurate: bool, headers: dict[str, str] | None = None) -> Any:
    """Open the page and tap 准确 / 不准确."""
    csrf = await open_forward(client, token, headers)
    return await client.post(
        f"/f/{token}/rate",
        data={"csrf_token": csrf, "accurate": "1" if accurate else "0"},
        headers={"Origin": own_origin(client), **(headers or {})},
    )
