"""Headless Chromium on an inbox with 500 live tickets: the urgent complaint is on top,
filters and search narrow the queue, an admin assigns a ticket, the transcript shows the
labels a member tapped, and member tags work end to end from the ticket page."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest_asyncio

from bot.core.models import Member
from bot.staff.models import StaffUser
from community.inbox.models import Ticket
from community.members.models import MemberTagChange
from tests.browser import MARKS, chromium
from tests.community_helpers import PASSWORD, chat
from tests.test_inbox_staff import QUESTION, bulk_tickets

pytestmark = MARKS


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[object]:
    async with chromium() as b:
        yield b


async def login(browser, base: str, username: str, roles: list[str]):  # type: ignore[no-untyped-def]
    from bot.staff.auth import create_staff

    await create_staff(username, PASSWORD, roles)
    ctx = await browser.new_context()
    page = await ctx.new_page()
    await page.goto(f"{base}/login?next=/inbox")
    await page.fill("input[name=username]", username)
    await page.fill("input[name=password]", PASSWORD)
    async with page.expect_navigation():
        await page.click("button[type=submit]")
    return page


async def test_500_tickets_urgent_filters_assignment_transcript_tags(client, browser) -> None:
    base = str(client.make_url("")).rstrip("/")
    await bulk_tickets(480, start=datetime.now(timezone.utc) - timedelta(hours=1))
    await bulk_tickets(19, channel="sms", start=datetime.now(timezone.utc) - timedelta(minutes=50))
    # the member asks, taps 👍 on the answer, then complains: the newest ticket of 500
    replies = await chat(client, "angry", text=QUESTION)
    up = next(c for c in replies[0]["choices"] if c["action"].startswith("fb:up:"))
    await chat(client, "angry", action=up["action"])
    await chat(client, "angry", text="我要投诉，再不解决就打12300")
    complaint = await Ticket.get(member__accounts__external_id="angry")
    assert await Ticket.filter(status="open").count() == 500

    agent = await login(browser, base, "agent500", ["agent"])
    assert agent.url.endswith("/inbox")
    first = agent.locator("#queue-rows tr").first
    assert await first.get_attribute("data-ticket") == str(complaint.id)
    assert "urgent" in (await first.get_attribute("class") or "")
    assert "500" in await agent.inner_text("#page-info")
    assert await agent.locator("#queue-rows tr").count() == 50
    # paging: page 2 continues first in, first out, and the last page holds the rest
    last_on_first = int(await agent.locator("#queue-rows tr").last.get_attribute("data-ticket") or 0)
    async with agent.expect_navigation():
        await agent.click("#next-page")
    second = [int(await r.get_attribute("data-ticket") or 0) for r in await agent.locator("#queue-rows tr").all()]
    assert len(second) == 50 and second == sorted(second) and second[0] > last_on_first
    await agent.goto(f"{base}/inbox?page=10")
    assert await agent.locator("#queue-rows tr").count() == 50 and "10" in await agent.inner_text("#page-info")
    await agent.goto(f"{base}/inbox")

    # filters: the channel select and the search box
    await agent.select_option("select[name=channel]", "sms")
    async with agent.expect_navigation():
        await agent.click("#apply-filters")
    assert await agent.locator("#queue-rows tr").count() == 19
    await agent.goto(f"{base}/inbox")
    await agent.fill("input[name=q]", "12300")
    async with agent.expect_navigation():
        await agent.click("#apply-filters")
    rows = agent.locator("#queue-rows tr")
    assert await rows.count() == 1 and await rows.first.get_attribute("data-ticket") == str(complaint.id)

    # the transcript: the tapped label and the choices that were offered, no raw codes
    await agent.click(f"tr[data-ticket='{complaint.id}'] a")
    await agent.wait_for_selector("#transcript")
    transcript = await agent.inner_text("#transcript")
    assert up["label"] in transcript and up["action"] not in transcript
    assert transcript.index(QUESTION) < transcript.index(up["label"]) < transcript.index("12300")
    offered = await agent.locator("#transcript .offered").first.inner_text()
    assert [line.strip() for line in offered.splitlines() if line.strip()] == [
        c["label"] for c in replies[0]["choices"]
    ]
    assert "12300" in await agent.inner_text("#ticket-messages")

    # tags end to end: add on the ticket page, filter by it, remove, audited
    await agent.fill("#new-tag", "VIP")
    await agent.click("#add-tag")
    await agent.wait_for_selector("#member-tags .tag")
    assert "vip" in await agent.inner_text("#member-tags")
    assert (await Member.get(id=complaint.member_id)).tags == ["vip"]
    await agent.goto(f"{base}/inbox?tag=vip")
    assert await agent.locator("#queue-rows tr").count() == 1
    await agent.goto(f"{base}/inbox/t/{complaint.id}")
    async with agent.expect_navigation():
        await agent.click("#member-tags .remove-tag")
    assert (await Member.get(id=complaint.member_id)).tags == []
    ops = (
        await MemberTagChange.filter(member_id=complaint.member_id).order_by("id").values_list("op", "actor", "source")
    )
    assert ops == [("add", "staff:agent500", "inbox"), ("remove", "staff:agent500", "inbox")]

    # assignment: an admin hands the complaint to the agent, who finds it under "me"
    # (the agent waits on the queue page: an open ticket page reloads itself when the ticket
    # changes hands, and so does the admin's, so the test watches the database, not the page)
    await agent.goto(f"{base}/inbox")
    admin = await login(browser, base, "boss500", ["admin"])
    await admin.goto(f"{base}/inbox/t/{complaint.id}")
    agent_id = (await StaffUser.get(username="agent500")).id
    await admin.select_option("form[action$='/assign'] select[name=staff_id]", str(agent_id))
    await admin.click("form[action$='/assign'] button")
    for _ in range(200):
        if (await Ticket.get(id=complaint.id)).assignee_id == agent_id:
            break
        await asyncio.sleep(0.05)
    assert (await Ticket.get(id=complaint.id)).assignee_id == agent_id
    await agent.select_option("select[name=assignee]", str(agent_id))
    async with agent.expect_navigation():
        await agent.click("#apply-filters")
    rows = agent.locator("#queue-rows tr")
    assert await rows.count() == 1 and await rows.first.get_attribute("data-ticket") == str(complaint.id)
    assert "agent500" in await rows.first.inner_text()

    # an SLA breach is alerted on the page, and the breached ticket joins the urgent ones
    late = await Ticket.filter(status="open", channel="sms").order_by("id").first()
    assert late is not None
    await Ticket.filter(id=late.id).update(first_response_due=datetime.now(timezone.utc) - timedelta(minutes=1))
    await agent.goto(f"{base}/inbox")
    assert "1" in await agent.inner_text("#sla-alert")
    async with agent.expect_navigation():
        await agent.click("#sla-alert a")
    urgent = [await r.get_attribute("data-ticket") for r in await agent.locator("#queue-rows tr").all()]
    assert urgent == [str(late.id), str(complaint.id)]  # both urgent: first in, first out
