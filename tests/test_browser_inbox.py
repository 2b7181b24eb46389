"""Headless Chromium drives /inbox: login, claim, reply, close; member text stays text;
no CSRF token or the wrong role is refused."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import pytest_asyncio

from bot.core.app_keys import SERVICES
from bot.core.models import OutboxMessage
from bot.staff.auth import create_staff
from community.inbox import events
from community.inbox.models import Ticket
from tests.browser import MARKS, chromium
from tests.community_helpers import PASSWORD, chat, wait_sent

pytestmark = MARKS


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[object]:
    async with chromium() as b:
        yield b


async def login(page, base: str, username: str) -> None:  # type: ignore[no-untyped-def]
    await page.goto(f"{base}/login?next=/inbox")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_load_state()


async def test_agent_claims_replies_and_closes(client, browser) -> None:
    base = str(client.make_url("")).rstrip("/")
    await create_staff("agnes", PASSWORD, ["agent"])
    await chat(client, "b1", text="人工")
    await chat(client, "b1", text='<script>document.title="pwned"</script><img src=x onerror="window.pwned=1">网速慢')
    ticket = await Ticket.get(member__accounts__external_id="b1")
    page = await browser.new_page()
    await login(page, base, "agnes")
    assert page.url.endswith("/inbox")
    await page.click(f"tr[data-ticket='{ticket.id}'] a")
    await page.wait_for_selector("#claim")
    # the member's markup is shown as text and never runs
    body = await page.inner_text("#ticket-messages")
    assert '<script>document.title="pwned"</script>' in body
    assert await page.title() != "pwned" and await page.evaluate("window.pwned === undefined")
    await page.click("#claim")
    await page.wait_for_selector("#send")
    await page.fill("#reply-text", "您好，已为您检查线路，请重启路由器。")
    await page.click("#send")
    await page.wait_for_selector("text=已为您检查线路")
    sent = await wait_sent(channel="web", address="b1", purpose="agent")
    assert "重启路由器" in sent.payload["text"]
    await page.click("#close")
    await page.wait_for_selector("text=Survey sent" if False else ".survey")
    assert (await Ticket.get(id=ticket.id)).status == "closed"
    await wait_sent(channel="web", address="b1", purpose="survey")


async def test_live_update_shows_new_ticket_without_reload(client, browser, monkeypatch) -> None:
    # the page's EventSource must be subscribed before the ticket is opened, or the event
    # is missed: wait for the subscription itself, not a guessed time (a loaded machine
    # can take more than a second to load the page and connect)
    subscribed = asyncio.Event()
    real_subscribe = events.subscribe

    def subscribe(services):  # type: ignore[no-untyped-def]
        sub = real_subscribe(services)
        real_start = sub.start

        async def start() -> None:
            await real_start()
            subscribed.set()

        sub.start = start  # type: ignore[method-assign]
        return sub

    monkeypatch.setattr(events, "subscribe", subscribe)
    base = str(client.make_url("")).rstrip("/")
    await create_staff("lena", PASSWORD, ["agent"])
    page = await browser.new_page()
    await login(page, base, "lena")
    await asyncio.wait_for(subscribed.wait(), 20)  # EventSource connected
    await chat(client, "b2", text="我要投诉")
    ticket = await Ticket.get(member__accounts__external_id="b2")
    await page.wait_for_selector(f"tr[data-ticket='{ticket.id}']", timeout=15000)


async def test_requests_without_csrf_or_with_wrong_role_are_refused(client, browser) -> None:
    base = str(client.make_url("")).rstrip("/")
    await create_staff("otto", PASSWORD, ["agent"])
    await chat(client, "b3", text="人工")
    ticket = await Ticket.get(member__accounts__external_id="b3")
    page = await browser.new_page()
    await login(page, base, "otto")
    # a form posted without the token (as a forged cross-site form would be)
    status = await page.evaluate(
        """async (id) => (await fetch('/inbox/t/' + id + '/claim', {method: 'POST',
             headers: {'Content-Type': 'application/x-www-form-urlencoded'}, body: ''})).status""",
        ticket.id,
    )
    assert status == 403
    assert (await Ticket.get(id=ticket.id)).status == "open"
    resp = await page.goto(f"{base}/admin/moderation")
    assert resp is not None and resp.status == 403
    assert await OutboxMessage.filter(purpose="agent").count() == 0
    assert client.app[SERVICES] is not None
