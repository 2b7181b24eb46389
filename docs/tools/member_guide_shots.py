"""Screenshots for docs/member-guide.md: the member pages in headless Chromium, zh_CN.

Run from the repository root: ``python docs/tools/member_guide_shots.py``. It serves the app
on a throw-away SQLite file with the sample knowledge base, walks the pages as two members
(an asker and a helper, each in their own browser context) and writes PNGs (390 px wide,
under 150 KB each) to docs/images/."""

from __future__ import annotations

import asyncio
import sys
import tempfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from bot.app import create_app
from bot.core.app_keys import SERVICES
from bot.core.messages import Reply
from bot.core.models import ChannelAccount, Member
from community.qa.models import Answer, Question
from tests.browser import chromium, served
from tests.conftest import load_sample_kb, make_settings

OUT = ROOT / "docs" / "images"
VIEW = {"width": 390, "height": 760}
QUESTION = "携号转网需要满足什么条件？"
ANSWER = "在网满 120 天、没有欠费、不在合约期内即可办理，可先发短信 CXHZW 查询是否符合条件。"


async def shot(page, name: str) -> None:  # type: ignore[no-untyped-def]
    path = OUT / f"{name}.png"
    await page.screenshot(path=str(path))
    size = path.stat().st_size
    print(f"{path.relative_to(ROOT)}  {size // 1024} KB")
    assert size < 150 * 1024, f"{name}.png is {size} bytes"


async def say(page, text: str) -> None:  # type: ignore[no-untyped-def]
    before = await page.locator(".msg.bot").count()
    await page.fill("#text", text)
    await page.click("#send")
    await page.locator(".msg.bot").nth(before).wait_for(timeout=10_000)


async def name_of_session(page, name: str) -> int:  # type: ignore[no-untyped-def]
    cookie = next(c["value"] for c in await page.context.cookies() if c["name"] == "everycsr_chat")
    account = await ChannelAccount.get(channel="web", external_id="session/" + cookie.rpartition(".")[0])
    await Member.filter(id=account.member_id).update(display_name=name)
    return account.member_id


async def main() -> None:
    from gamification.service import GAMIFICATION

    OUT.mkdir(parents=True, exist_ok=True)
    app = create_app(make_settings(Path(tempfile.mkdtemp())), db_setup="schema")
    async with served(app) as base, chromium() as browser:
        await load_sample_kb(app)
        asker_ctx = await browser.new_context(locale="zh-CN", viewport=VIEW)
        helper_ctx = await browser.new_context(locale="zh-CN", viewport=VIEW)
        asker, helper = await asker_ctx.new_page(), await helper_ctx.new_page()

        await asker.goto(f"{base}/chat?lang=zh_CN")
        await say(asker, "我的流量还剩多少，怎么查？")
        await shot(asker, "chat-answer")
        await say(asker, f"提问 {QUESTION}")
        asker_id = await name_of_session(asker, "小林")
        await shot(asker, "chat-ask")
        q = await Question.get(text=QUESTION)

        await helper.goto(f"{base}/chat?lang=zh_CN")
        await say(helper, "你好")
        await name_of_session(helper, "热心的王师傅")
        await helper.goto(f"{base}/questions?lang=zh_CN")
        await shot(helper, "questions")
        await helper.goto(f"{base}/questions/{q.code}?lang=zh_CN")
        await helper.fill("#answer-text", ANSWER)
        await helper.locator("#answer-text").scroll_into_view_if_needed()
        await shot(helper, "question-answer")
        await helper.get_by_role("button", name="发布回答").click()
        await helper.wait_for_url("**done=answer-ok")

        await asker.goto(f"{base}/questions/{q.code}?lang=zh_CN")
        await shot(asker, "question-accept")
        await asker.get_by_role("button", name="采纳这个回答").click()
        await asker.wait_for_url("**done=accept-ok")

        (ans,) = await Answer.filter(question_id=q.id)
        await app[GAMIFICATION].release_due(datetime.now(UTC) + timedelta(days=60))  # the hold ends
        await asker.goto(f"{base}/members/{ans.member_id}?lang=zh_CN")
        await shot(asker, "profile")
        await asker.goto(f"{base}/badges?lang=zh_CN")
        await shot(asker, "badges")
        await asker.goto(f"{base}/leaderboard?lang=zh_CN")
        await shot(asker, "leaderboard")

        await asker.goto(f"{base}/chat?lang=zh_CN")
        await asker.wait_for_selector("#chat[data-live='events']", timeout=10_000)
        await app[SERVICES].outbox.to_member(
            asker_id,
            Reply(text="您好，我是客服小王。携号转网的办理进度已为您查询：资格校验通过，可前往营业厅办理。"),
            purpose="agent",
            idempotency_key="guide-agent",
        )
        await asker.locator(".msg.agent").last.wait_for(timeout=10_000)
        await asker.evaluate("() => window.scrollTo(0, document.body.scrollHeight)")
        await shot(asker, "chat-agent")
        await asker_ctx.close()
        await helper_ctx.close()


if __name__ == "__main__":
    asyncio.run(main())
