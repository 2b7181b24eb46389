"""Headless Chromium on /admin/moderation: a reviewer rejects an item from a page that went
stale while a colleague approved it on /staff/review. The one decision path refuses the second
decision and says so in the reviewer's language; nothing changes."""

from __future__ import annotations

from collections.abc import AsyncIterator

import pytest
import pytest_asyncio

from bot.staff.auth import create_staff
from community.moderation.models import ReviewItem
from community.review import service as review
from community.review.models import Kind, Reviewable, ReviewableAction, Status
from tests.browser import MARKS, chromium
from tests.community_helpers import PASSWORD
from tests.test_review_one_path import held

pytestmark = MARKS

ALREADY = {
    "zh-CN": "这条事项已由他人处理。",
    "zh-TW": "這條事項已由他人處理。",
    "en": "Someone else already decided this item.",
}


@pytest_asyncio.fixture
async def browser() -> AsyncIterator[object]:
    async with chromium() as b:
        yield b


@pytest.mark.parametrize("locale", list(ALREADY))
async def test_a_stale_page_cannot_decide_twice(client, browser, locale: str) -> None:  # type: ignore[no-untyped-def]
    item = await held(client, f"明天全城停水 {locale}")
    name = f"rev-{locale.lower()}"
    await create_staff(name, PASSWORD, ["reviewer"])
    colleague = await create_staff(f"{name}-2", PASSWORD, ["reviewer"])
    base = str(client.make_url("")).rstrip("/")
    page = await (await browser.new_context(locale=locale)).new_page()
    await page.goto(f"{base}/login?next=/admin/moderation")
    await page.fill("input[name=username]", name)
    await page.fill("input[name=password]", PASSWORD)
    async with page.expect_navigation():
        await page.click("button[type=submit]")
    form = page.locator(f"form[action='/admin/moderation/items/{item.id}']")
    assert await form.count() == 1  # the reviewer sees the item waiting

    await review.decide_target(Kind.MODERATION_ITEM, item.id, "approve", colleague, "ok")  # on the queue, meanwhile

    await form.locator("input[name=reason], textarea[name=reason]").first.fill("谣言")
    async with page.expect_navigation():
        await form.locator("button[value=reject]").click()
    assert ALREADY[locale] in await page.locator("p.flash[role=alert]").inner_text()
    assert (await ReviewItem.get(id=item.id)).status == "approved"
    r = await Reviewable.get(kind=Kind.MODERATION_ITEM, target_id=item.id)
    assert r.status == Status.APPROVED
    assert await ReviewableAction.filter(reviewable_id=r.id).exclude(action="open").count() == 1
