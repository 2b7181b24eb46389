"""Headless Chromium drives the /chat page: type a question, tap a choice."""
from __future__ import annotations

from pathlib import Path

from bot.app import create_app
from bot.models import AnswerFeedback
from tests.browser import MARKS, chromium, served
from tests.conftest import load_sample_kb, make_settings

pytestmark = MARKS


async def test_chat_page_question_and_feedback(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path), db_setup="schema")
    async with served(app) as base:
        await load_sample_kb(app)
        async with chromium() as browser:
            page = await browser.new_page(locale="zh-CN")
            await page.goto(f"{base}/chat")
            await page.fill("#text", "我的流量还剩多少，怎么查？")
            await page.click("#send")
            bot_msg = page.locator(".msg.bot").nth(1)
            await bot_msg.wait_for(timeout=10_000)
            assert "这个回答有帮助吗" in await bot_msg.inner_text()
            await page.get_by_role("button", name="👍 有帮助").click()
            thanks = page.locator(".msg.bot").nth(2)
            await thanks.wait_for(timeout=10_000)
            assert "感谢" in await thanks.inner_text()
            # member text is shown as text, never run as HTML
            await page.fill("#text", "<img src=x onerror=alert(1)>")
            await page.click("#send")
            await page.locator(".msg.me").nth(2).wait_for(timeout=10_000)
            assert await page.locator(".msg.me img").count() == 0
        assert await AnswerFeedback.filter(helpful=True).count() == 1
