"""Headless Chromium against the staff login (issue #19): the throttle's message, the login
form's CSRF token working for a real browser, the security headers, and that the CSP breaks
none of our own pages' scripts."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from bot.staff.auth import create_staff
from community.inbox.models import Ticket
from tests.browser import MARKS, chromium
from tests.community_helpers import PASSWORD, chat

pytestmark = MARKS


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[object]:
    async with chromium() as b:
        yield b


async def _submit(page, username: str, password: str) -> None:  # type: ignore[no-untyped-def]
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", password)
    await page.click("button[type=submit]")
    await page.wait_for_load_state()


async def test_lockout_message_and_headers_in_a_real_browser(client, browser) -> None:
    base = str(client.make_url("")).rstrip("/")
    await create_staff("lena", PASSWORD, ["agent"])
    page = await browser.new_page(locale="zh-CN", extra_http_headers={"Accept-Language": "zh-CN"})
    response = await page.goto(f"{base}/login?next=/inbox")
    headers = response.headers
    assert "frame-ancestors 'none'" in headers["content-security-policy"]
    assert headers["x-frame-options"] == "DENY" and headers["x-content-type-options"] == "nosniff"
    for _ in range(5):
        await _submit(page, "lena", "wrong-password")
        assert "用户名或密码错误" in await page.content() or "Wrong username" in await page.content()
    await _submit(page, "lena", PASSWORD)  # the right password, locked out
    text = await page.inner_text("[role=alert]")
    assert "分钟" in text and "15" in text
    assert "/login" in page.url


async def test_csp_allows_our_scripts_and_the_form_token_works(client, browser) -> None:
    base = str(client.make_url("")).rstrip("/")
    await create_staff("omar", PASSWORD, ["agent"])
    await chat(client, "csp-member", text="人工")
    ticket = await Ticket.filter().order_by("-id").first()
    assert ticket is not None
    page = await browser.new_page()
    violations: list[str] = []
    page.on("console", lambda msg: violations.append(msg.text) if "Content Security Policy" in msg.text else None)
    await page.goto(f"{base}/login?next=/inbox")
    await _submit(page, "omar", PASSWORD)  # a real browser sends Origin: the form's token is checked
    assert page.url.endswith("/inbox")
    await page.goto(f"{base}/inbox/t/{ticket.id}")
    await page.wait_for_selector("#claim")
    await page.goto(f"{base}/chat")
    await page.wait_for_load_state("networkidle")
    assert violations == []
    # an inline script without our nonce does not run
    ran = await page.evaluate("""() => new Promise(resolve => {
        window.__injected = false;
        const s = document.createElement('script');
        s.textContent = 'window.__injected = true';
        document.body.appendChild(s);
        setTimeout(() => resolve(window.__injected), 50);
    })""")
    assert ran is False
