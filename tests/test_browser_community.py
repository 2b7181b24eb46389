"""Headless Chromium walks the member pages as a person on a phone does: chat -> community
-> a solved question -> the answerer's profile -> badges, and checks the pages' access
basics (labels, contrast, keyboard, 360 px width) in each locale."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from bot.app import create_app
from bot.core.models import ChannelAccount, Member
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
    q = await Question.create(
        code="qb1",
        member=asker,
        channel="web",
        text="携号转网需要满足什么条件？",
        status="accepted",
        deadline_at="2030-01-01T00:00:00+00:00",
        bump_at="2030-01-01T00:00:00+00:00",
    )
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


async def test_answer_and_accept_in_the_browser_reach_the_answerers_profile(tmp_path: Path) -> None:
    """list -> question -> answer (helper's chat session) -> accept (the asker, in another
    browser context with its own session) -> the answerer's profile shows points and badge."""
    from gamification.service import GAMIFICATION

    text = "携号转网需要满足什么条件？"
    answer = "在网满 120 天、没有欠费、不在合约期内即可办理。"
    app = create_app(make_settings(tmp_path), db_setup="schema")
    async with served(app) as base:
        await load_sample_kb(app)
        async with chromium() as browser:
            asker_ctx = await browser.new_context(locale="zh-CN", viewport={"width": 360, "height": 740})
            helper_ctx = await browser.new_context(locale="zh-CN", viewport={"width": 360, "height": 740})
            asker = await asker_ctx.new_page()
            helper = await helper_ctx.new_page()
            await asker.goto(f"{base}/chat")
            await asker.fill("#text", f"提问 {text}")
            await asker.click("#send")
            await asker.locator(".msg.bot").nth(1).wait_for(timeout=10_000)
            q = await Question.get(text=text)

            # a visitor without a chat session is sent to the chat
            await helper.goto(f"{base}/questions/{q.code}")
            assert await helper.locator("#answer-text").count() == 0
            await helper.get_by_role("link", name="打开聊天").click()
            await helper.wait_for_url("**/chat")
            await helper.fill("#text", "你好")
            await helper.click("#send")
            await helper.locator(".msg.bot").nth(1).wait_for(timeout=10_000)
            await helper.get_by_role("link", name="社区").click()
            await helper.wait_for_url("**/questions")
            await helper.get_by_role("link", name=text).click()
            await helper.wait_for_url(f"**/questions/{q.code}")
            await check_access(helper, "question with the answer form")
            # keyboard only: focus the labelled box, type, Tab to the button, Enter
            await helper.get_by_label("写下您知道的内容，提问者会立即收到通知。").focus()
            await helper.keyboard.type(answer)
            await helper.keyboard.press("Tab")
            assert await helper.evaluate("() => document.activeElement.textContent") == "发布回答"
            await helper.keyboard.press("Enter")
            await helper.wait_for_url("**done=answer-ok")
            assert "回答已发送给提问的用户" in await helper.inner_text("#form-done")
            assert answer in await helper.inner_text("main")

            await asker.goto(f"{base}/questions/{q.code}")
            await asker.get_by_role("button", name="👍 有帮助").click()
            await asker.wait_for_url("**done=vote-ok")
            await asker.get_by_role("button", name="采纳这个回答").click()
            await asker.wait_for_url("**done=accept-ok")
            assert "提问者已采纳" in await asker.inner_text("main")
            await check_access(asker, "accepted question")

            (ans,) = await Answer.filter(question_id=q.id)
            gamification = app[GAMIFICATION]
            summary = await gamification.summary(ans.member_id)
            # an award from a brand-new asker is pending (anti-gaming hold): shown, not spendable
            assert summary.held > 0 and summary.balance == 0
            await asker.locator(f"#answer-{ans.id} a").first.click()
            await asker.wait_for_url(f"**/members/{ans.member_id}")
            figures = await asker.inner_text("dl.figures")
            assert "待生效积分" in figures and str(summary.held) in figures, figures
            await check_access(asker, "answerer profile, points pending")
            # the hold ends (the hourly job): the points are paid and the badge follows
            from datetime import datetime, timedelta, timezone

            await gamification.release_due(datetime.now(timezone.utc) + timedelta(days=60))
            summary = await gamification.summary(ans.member_id)
            assert summary.balance > 0 and "first_accept" in summary.badge_codes
            await asker.reload()
            profile = await asker.inner_text("main")
            assert "首个被采纳的回答" in profile, profile
            figures = await asker.inner_text("dl.figures")
            assert str(summary.balance) in figures and "待生效积分" not in figures, figures
            await check_access(asker, "answerer profile")
            await asker_ctx.close()
            await helper_ctx.close()
