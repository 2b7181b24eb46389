"""Headless Chromium walks the member pages as a person on a phone does: chat -> community
-> a solved question -> the answerer's profile -> badges, and checks the pages' access
basics (labels, contrast, keyboard, 360 px width) in each locale."""
from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.app import create_app
from bot.models import ChannelAccount, Member
from community.qa.models import Answer, Question
from gamification.models import MemberBadge
from tests.browser import MARKS, chromium, served
from tests.conftest import load_sample_kb, make_settings

pytestmark = MARKS

# WCAG 2.1 contrast of an element's text against the nearest opaque background, in the page
CONTRAST_JS = """(els) => els.map(el => {
  const rgb = s => (s.match(/[\\d.]+/g) || []).map(Number);
  const lum = ([r, g, b]) => { const f = c => { c /= 255; return c <= 0.03928 ? c / 12.92 : ((c + 0.055) / 1.055) ** 2.4; };
                               return 0.2126 * f(r) + 0.7152 * f(g) + 0.0722 * f(b); };
  let bg = null, node = el;
  while (node && node.nodeType === 1) { const c = rgb(getComputedStyle(node).backgroundColor);
    if (c.length === 3 || (c.length === 4 && c[3] > 0.9)) { bg = c.slice(0, 3); break; } node = node.parentElement; }
  bg = bg || [255, 255, 255];
  const fg = rgb(getComputedStyle(el).color).slice(0, 3);
  const [a, b] = [lum(fg), lum(bg)].sort((x, y) => y - x);
  return [el.textContent.trim().slice(0, 30), (a + 0.05) / (b + 0.05)];
})"""

UNLABELLED_JS = """() => [...document.querySelectorAll('input:not([type=hidden]), select, textarea')]
  .filter(el => !(el.labels && el.labels.length) && !el.getAttribute('aria-label')).map(el => el.name || el.id)"""


async def seed() -> tuple[Question, Member]:
    asker = await Member.create(display_name="小林")
    helper = await Member.create(display_name="热心的王师傅")
    for m, ext in ((asker, "b-asker"), (helper, "b-helper")):
        await ChannelAccount.create(member=m, channel="web", external_id=ext)
    q = await Question.create(code="qb1", member=asker, channel="web", text="携号转网需要满足什么条件？",
                              status="accepted", deadline_at="2030-01-01T00:00:00+00:00",
                              bump_at="2030-01-01T00:00:00+00:00")
    await Answer.create(question=q, member=helper, channel="web", text="在网满 120 天、无欠费即可。", accepted=True)
    await MemberBadge.create(member=helper, code="first_accept", award_key=f"badge:first_accept:{helper.id}")
    return q, helper


async def check_access(page: Any, where: str) -> None:
    assert await page.evaluate(UNLABELLED_JS) == [], where
    width = await page.evaluate("() => document.documentElement.scrollWidth")
    assert width <= 360, (where, width)  # nothing forces sideways scrolling on a phone
    ratios = await page.eval_on_selector_all("main a, main p, main li, main td, header a", CONTRAST_JS)
    low = [(text, round(r, 2)) for text, r in ratios if text and r < 4.5]
    assert not low, (where, low)


async def test_member_walks_from_chat_to_a_helpers_profile(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path), db_setup="schema")
    async with served(app) as base:
        await load_sample_kb(app)
        q, helper = await seed()
        async with chromium() as browser:
            page = await browser.new_page(locale="zh-CN", viewport={"width": 360, "height": 740})
            await page.goto(f"{base}/chat")
            await page.get_by_role("link", name="社区").click()
            await page.wait_for_url("**/questions")
            await check_access(page, "questions")
            await page.get_by_role("link", name="已解决").click()
            await page.get_by_role("link", name=q.text).click()
            await page.wait_for_url(f"**/questions/{q.code}")
            assert "提问者已采纳" in await page.inner_text("main")
            await check_access(page, "question")
            await page.get_by_role("link", name="热心的王师傅").click()
            await page.wait_for_url(f"**/members/{helper.id}")
            profile = await page.inner_text("main")
            assert "首次回答被采纳" in profile or "获得" in profile, profile
            assert q.text[:8] in profile
            await check_access(page, "profile")
            await page.get_by_role("link", name="徽章").first.click()
            await page.wait_for_url("**/badges")
            assert "热心的王师傅" in await page.inner_text("main")
            await check_access(page, "badges")
            # keyboard: the search box is reachable and submits with Enter
            await page.goto(f"{base}/questions?show=all")
            await page.focus("#q-search")
            await page.keyboard.type("携号")
            await page.keyboard.press("Enter")
            await page.wait_for_url("**q=*")
            assert q.text in await page.inner_text("main")


async def test_member_pages_read_in_each_locale(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path), db_setup="schema")
    async with served(app) as base:
        _q, helper = await seed()
        async with chromium() as browser:
            for lang, word in (("zh_CN", "最近动态"), ("zh_TW", "最近動態"), ("en", "Recent activity")):
                page = await browser.new_page(viewport={"width": 360, "height": 740})
                await page.goto(f"{base}/members/{helper.id}?lang={lang}")
                assert word in await page.inner_text("main")
                await check_access(page, f"profile {lang}")
                await page.close()
