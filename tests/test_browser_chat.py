"""Headless Chromium drives the /chat page: type a question, tap a choice."""

from __future__ import annotations

from pathlib import Path

from bot.app import create_app
from bot.core.models import AnswerFeedback
from tests.browser import MARKS, chromium, served
from tests.test_browser_community import check_access
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


async def _ready(page) -> None:  # type: ignore[no-untyped-def]
    await page.wait_for_selector("#chat[data-ready='1']", timeout=10_000)


async def test_reload_keeps_the_conversation_and_agent_replies_arrive_by_sse(tmp_path: Path) -> None:
    from bot.core.app_keys import SERVICES
    from bot.core.messages import Reply
    from bot.core.models import ChannelAccount

    app = create_app(make_settings(tmp_path), db_setup="schema")
    async with served(app) as base:
        await load_sample_kb(app)
        async with chromium() as browser:
            page = await browser.new_page(locale="zh-CN", viewport={"width": 360, "height": 740})
            asked: list[str] = []
            page.on("request", lambda r: asked.append(r.url))
            await page.goto(f"{base}/chat")
            await _ready(page)
            await page.fill("#text", "我的流量还剩多少，怎么查？")
            await page.click("#send")
            await page.locator(".msg.bot").nth(1).wait_for(timeout=10_000)
            await page.reload()
            await _ready(page)
            assert await page.locator(".msg.me .bubble").first.inner_text() == "我的流量还剩多少，怎么查？"
            answer = page.locator(".msg.bot").nth(1)
            assert "这个回答有帮助吗" in await answer.inner_text()
            # the pending menu is still live after the reload: tapping it is answered
            await page.get_by_role("button", name="👍 有帮助").click()
            await page.locator(".msg.bot").nth(2).wait_for(timeout=10_000)
            assert "感谢" in await page.locator(".msg.bot").nth(2).inner_text()
            await page.reload()
            await _ready(page)
            # after the tap, the old menu comes back as labels only
            assert await page.get_by_role("button", name="👍 有帮助").is_disabled()
            assert await page.locator(".msg.me .bubble").nth(1).inner_text() == "👍 有帮助"

            # an agent's reply reaches the open page on the event stream, with no polling
            (account,) = await ChannelAccount.filter(channel="web")
            await page.wait_for_selector("#chat[data-live='events']", timeout=10_000)
            await app[SERVICES].outbox.to_member(
                account.member_id,
                Reply(text="您好，我是客服小王，已为您处理。"),
                purpose="agent",
                idempotency_key="agent-1",
            )
            agent = page.locator(".msg.agent")
            await agent.wait_for(timeout=10_000)
            assert await agent.inner_text() == "您好，我是客服小王，已为您处理。"
            await page.reload()
            await _ready(page)
            assert await page.locator(".msg.agent").count() == 1  # from the history, not twice
            await check_access(page, "chat after reload")
            # keyboard: the message box has focus on load and sends with Enter
            assert await page.evaluate("() => document.activeElement.id") == "text"
            await page.keyboard.type("怎么充值话费")
            await page.keyboard.press("Enter")
            await page.locator(".msg.me").nth(2).wait_for(timeout=10_000)
            assert any("/api/v1/chat/events" in u for u in asked)
            assert not any("/api/v1/chat/updates" in u for u in asked), [u for u in asked if "updates" in u]


async def test_zh_tw_session_receives_traditional_answers(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path), db_setup="schema")
    async with served(app) as base:
        await load_sample_kb(app)
        async with chromium() as browser:
            page = await browser.new_page(locale="zh-TW")
            await page.goto(f"{base}/chat?lang=zh_TW")
            await _ready(page)
            await page.fill("#text", "我的流量还剩多少，怎么查？")
            await page.click("#send")
            answer = page.locator(".msg.bot").nth(1)
            await answer.wait_for(timeout=10_000)
            text = await answer.inner_text()
            assert "怎麼查詢剩餘流量" in text and "怎么查询" not in text
            assert await page.get_by_role("button", name="👍 有幫助").is_enabled()
            await page.reload()
            await _ready(page)
            assert "怎麼查詢剩餘流量" in await page.locator(".msg.bot").nth(1).inner_text()
