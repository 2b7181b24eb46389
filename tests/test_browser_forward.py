"""Headless Chromium reads a forwarded answer as a person does: opening the link pays nobody,
tapping "this helped me" pays the sharer once, a bot's GET pays nothing, and another site's
page posting the form (even with the right token) is refused."""

from __future__ import annotations

from pathlib import Path

import aiohttp
from aiohttp import web

from bot.app import create_app
from bot.core.models import ChannelAccount
from gamification import ledger
from gamification.models import ForwardEngagement
from tests.browser import MARKS, chromium, served
from tests.community_helpers import as_member
from tests.conftest import load_sample_kb, make_settings
from tests.forward_helpers import CSRF

pytestmark = MARKS


async def share(base: str, user: str) -> str:
    async with aiohttp.ClientSession() as s:
        async with s.post(f"{base}/api/v1/chat", json={**as_member(user), "text": "我的流量还剩多少，怎么查？"}) as r:
            replies = (await r.json())["replies"]
        fw = next(c["action"] for c in replies[0]["choices"] if c["action"].startswith("fw:"))
        async with s.post(f"{base}/api/v1/chat", json={**as_member(user), "action": fw}) as r:
            return (await r.json())["replies"][0]["cards"][0]["url"].rsplit("/f/", 1)[1]


def evil_site(target: str, csrf: str) -> web.Application:
    """Another origin whose page makes the visitor's browser post the reader's form."""

    async def page(_request: web.Request) -> web.Response:
        return web.Response(
            content_type="text/html",
            text=(
                f'<form id="f" method="post" action="{target}"><input type="hidden" name="csrf_token" value="{csrf}">'
                '<button type="submit">win a prize</button></form>'
            ),
        )

    app = web.Application()
    app.router.add_get("/", page)
    return app


async def test_a_reader_taps_once_a_bot_and_another_site_pay_nothing(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path), db_setup="schema")
    async with served(app) as base:
        await load_sample_kb(app)
        token = await share(base, "browser-sharer")
        sharer = (await ChannelAccount.get(channel="web", external_id="browser-sharer")).member_id
        async with chromium() as browser:
            ctx = await browser.new_context(locale="zh-CN", viewport={"width": 360, "height": 740})
            page = await ctx.new_page()
            await page.goto(f"{base}/f/{token}")
            assert "剩余流量" in await page.inner_text("main")
            assert await page.get_by_role("button", name="👍 这条解答帮到我了").count() == 1
            assert (await ledger.balance_of(sharer)).held == 0  # opening the link paid nobody
            # another site's page posts the reader's form with the right token and the cookie
            csrf = CSRF.search(await page.content()).group(1)  # type: ignore[union-attr]
            async with served(evil_site(f"{base}/f/{token}/read", csrf)) as evil:
                await page.goto(evil)
                async with page.expect_response(lambda r: r.url.endswith("/read")) as info:
                    await page.get_by_role("button", name="win a prize").click()
                assert (await info.value).status == 403
            assert not await ForwardEngagement.filter(link__token=token).exists()
            # the person taps the button on the page itself
            await page.goto(f"{base}/f/{token}")
            await page.get_by_role("button", name="👍 这条解答帮到我了").click()
            await page.wait_for_url(f"**/f/{token}")
            assert "感谢您的反馈" in await page.inner_text("main")
            held = (await ledger.balance_of(sharer)).held
            assert held > 0
            assert await page.get_by_role("button", name="👍 这条解答帮到我了").count() == 0
            await page.reload()
            assert await page.get_by_role("button", name="👍 这条解答帮到我了").count() == 0
            # a bot fetching the link (no cookies, no taps) pays nothing
            async with aiohttp.ClientSession(headers={"User-Agent": "Googlebot/2.1"}) as bot:
                for _ in range(3):
                    async with bot.get(f"{base}/f/{token}") as r:
                        assert r.status == 200
            assert (await ledger.balance_of(sharer)).held == held
            assert await ForwardEngagement.filter(link__token=token).count() == 1
            await ctx.close()
