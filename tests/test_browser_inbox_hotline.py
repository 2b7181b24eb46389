"""Headless Chromium: an agent hands a ticket to the phone hotline (转热线) and sees its state
on the ticket and in the queue; the member is told once."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import datetime, timezone

import pytest_asyncio

from bot.core.models import Member, OutboxMessage
from bot.staff.auth import create_staff
from bot.staff.models import StaffAudit
from community.inbox.models import Ticket
from tests.browser import MARKS, chromium
from tests.community_helpers import PASSWORD, chat, wait_sent

pytestmark = MARKS


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[object]:
    async with chromium() as b:
        yield b


async def test_agent_hands_a_ticket_to_the_hotline(client, browser) -> None:
    base = str(client.make_url("")).rstrip("/")
    await create_staff("hana", PASSWORD, ["agent"])
    await chat(client, "bh1", text="人工")
    await chat(client, "bh1", text="宽带每天晚上都断，电话里说比较清楚")
    ticket = await Ticket.get(member__accounts__external_id="bh1")
    await Member.filter(id=ticket.member_id).update(
        phone="+8613800135678", phone_verified_at=datetime.now(timezone.utc)
    )
    context = await browser.new_context()  # two tabs share the login
    page = await context.new_page()
    await page.goto(f"{base}/login?next=/inbox%3Flang%3Dzh_CN")
    await page.fill("input[name=username]", "hana")
    await page.fill("input[name=password]", PASSWORD)
    await page.click("button[type=submit]")
    await page.wait_for_load_state()
    await page.goto(f"{base}/inbox/t/{ticket.id}?lang=zh_CN")
    # a second tab on the same ticket, where the agent is typing (so live updates do not reload it)
    stale = await context.new_page()
    await stale.goto(f"{base}/inbox/t/{ticket.id}?lang=zh_CN")
    await stale.fill("#reply-text", "稍等")
    await page.click("#hotline-handoff summary")
    # the verified phone is offered masked; the agent leaves it and adds a note
    assert await page.get_attribute("#hotline-phone", "placeholder") == "138****5678"
    assert "13800135678" not in await page.content()
    await page.fill("#hotline-note", "晚上 8 点后回电")
    await page.click("#hotline")
    await page.wait_for_selector("#hotline-state")
    assert (await page.inner_text("#hotline-state")).strip() == "转热线"
    box = await page.inner_text("#hotline-box")
    assert "回拨号码：138****5678" in box and "晚上 8 点后回电" in box
    assert await page.locator("#hotline-form").count() == 0  # nothing to press twice
    notice = await page.inner_text("#ticket-messages .msg.hotline")
    assert "您的问题已转到热线" in notice and "138****5678" in notice
    # the member got one message, in their language, the number masked
    sent = await wait_sent(channel="web", address="bh1", idempotency_key=f"hotline:{ticket.id}")
    assert sent.payload["text"].startswith("您的问题已转到热线") and "13800135678" not in sent.payload["text"]
    # the same form posted again from the stale tab changes nothing and sends nothing
    await stale.click("#hotline-handoff summary")
    await stale.click("#hotline")
    await stale.wait_for_selector("#hotline-state")
    assert "未重复发送" in await stale.inner_text(".flash")
    assert await OutboxMessage.filter(idempotency_key__startswith="hotline:").count() == 1
    assert await StaffAudit.filter(action="ticket.hotline", target_id=str(ticket.id)).count() == 1
    # the queue shows the state
    await page.goto(f"{base}/inbox?status=live&lang=zh_CN")
    row = page.locator(f"tr[data-ticket='{ticket.id}']")
    assert "转热线" in await row.inner_text()
    await context.close()
