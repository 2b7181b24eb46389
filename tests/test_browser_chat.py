"""Headless Chromium drives the /chat page: type a question, tap a choice."""
from __future__ import annotations

import shutil
import socket
import tempfile
from pathlib import Path

import pytest
from aiohttp import web

from bot.app import create_app
from bot.models import AnswerFeedback
from tests.conftest import load_sample_kb, make_settings

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(not Path(CHROMIUM).exists(), reason="Debian's chromium is not installed"),
]
CHROME_ARGS = ["--no-sandbox", "--disable-gpu", "--disable-background-networking", "--disable-component-update",
               "--disable-sync", "--no-first-run", "--disable-dev-shm-usage"]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def test_chat_page_question_and_feedback(tmp_path: Path) -> None:
    from playwright.async_api import async_playwright

    app = create_app(make_settings(tmp_path), db_setup="schema")
    runner = web.AppRunner(app)
    await runner.setup()
    port = _free_port()
    site = web.TCPSite(runner, "127.0.0.1", port)
    await site.start()
    try:
        await load_sample_kb(app)
        async with async_playwright() as pw:
            browser = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROME_ARGS)
            try:
                page = await browser.new_page(locale="zh-CN")
                await page.goto(f"http://127.0.0.1:{port}/chat")
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
            finally:
                await browser.close()
        assert await AnswerFeedback.filter(helpful=True).count() == 1
    finally:
        await runner.cleanup()
