"""Headless Chromium on /staff/review: a reviewer reaches the queue from the staff home,
filters it to one kind and approves an item with a note; the item's own service did it."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest_asyncio

from bot.core.models import Member
from community.knowledge_admin import learning
from community.knowledge_admin.models import CandidateVariant
from community.models import KnowledgeItem
from community.review.models import Kind, Reviewable, ReviewableAction, Status
from tests.browser import MARKS, chromium
from tests.community_helpers import PASSWORD
from tests.test_review_web import waiting_items

pytestmark = MARKS


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[object]:
    async with chromium() as b:
        yield b


async def test_reviewer_filters_by_kind_and_approves(client, browser) -> None:  # type: ignore[no-untyped-def]
    from bot.core.app_keys import SERVICES
    from bot.staff.auth import create_staff

    services = client.app[SERVICES]
    held, contrib, _order = await waiting_items(client)
    item = await KnowledgeItem.filter(status="published").first()
    member = await Member.create()
    cv = await learning.suggest_variant(services, item.id, "宽带坏了找谁修呀", "pick", member.id)
    assert cv is not None

    base = str(client.make_url("")).rstrip("/")
    await create_staff("rev-b", PASSWORD, ["reviewer"])
    page = await (await browser.new_context(locale="zh-CN")).new_page()
    await page.goto(f"{base}/login?next=/staff")
    await page.fill("input[name=username]", "rev-b")
    await page.fill("input[name=password]", PASSWORD)
    async with page.expect_navigation():
        await page.click("button[type=submit]")
    async with page.expect_navigation():
        await page.click("a[href='/staff/review']")
    assert await page.locator("#review-rows tr[data-status=pending]").count() == 3  # no reward order for a reviewer

    await page.select_option("select[name=kind]", "candidate_variant")
    async with page.expect_navigation():
        await page.click("#apply-filters")
    rows = page.locator("#review-rows tr[data-status=pending]")
    assert await rows.count() == 1
    assert await rows.first.get_attribute("data-kind") == "candidate_variant"
    assert "宽带坏了找谁修呀" in await rows.first.inner_text()
    await rows.first.locator("input[name=note]").fill("常见说法")
    async with page.expect_navigation():
        await rows.first.locator("button.approve").click()
    assert page.url.endswith("/staff/review?kind=candidate_variant")  # the filter survives the decision
    assert await page.locator("#review-rows tr[data-status=pending]").count() == 0

    r = await Reviewable.get(kind=Kind.CANDIDATE_VARIANT, target_id=cv.id)
    assert r.status == Status.APPROVED
    assert (await ReviewableAction.filter(reviewable_id=r.id).order_by("-id").first()).note == "常见说法"
    assert (await CandidateVariant.get(id=cv.id)).status == "accepted"
    assert "宽带坏了找谁修呀" in (await KnowledgeItem.get(id=item.id)).variants
    # the other kinds still wait
    await page.select_option("select[name=kind]", "")
    async with page.expect_navigation():
        await page.click("#apply-filters")
    assert await page.locator("#review-rows tr[data-status=pending]").count() == 2
    assert held and contrib
