"""Headless Chromium opens the dashboard and the offer editor, as a marketer would."""

from __future__ import annotations

from pathlib import Path

from bot.app import create_app
from bot.staff.auth import create_staff
from community.offers.models import Offer
from tests.browser import MARKS, chromium, served
from tests.conftest import load_sample_kb, make_settings

pytestmark = MARKS


async def test_dashboard_and_offer_editor_in_chromium(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, offers_quiet_hours=""), db_setup="schema")
    async with served(app) as base:
        await load_sample_kb(app)
        await create_staff("mkt", "secret-pass-1", ["marketer"])
        async with chromium() as browser:
            page = await browser.new_page(locale="zh-CN")
            blocked: list[str] = []
            page.on("request", lambda r: blocked.append(r.url) if not r.url.startswith(base) else None)
            await page.goto(f"{base}/login?next=/dashboard")
            await page.fill("input[name=username]", "mkt")
            await page.fill("input[name=password]", "secret-pass-1")
            await page.click("button[type=submit]")
            await page.wait_for_url(f"{base}/dashboard")
            assert await page.locator("h1").inner_text() == "服务看板"
            # ECharts (served by the app; any request elsewhere is recorded in ``blocked``) drew
            # four KPI charts and the funnel, each at a readable size
            await page.wait_for_function("window.everycsrCharts && window.everycsrCharts.length === 5")
            assert await page.locator("#kpis .chart svg").count() == 4
            assert await page.locator("#funnel .chart svg").is_visible()
            box = await page.locator("#chart-funnel").bounding_box()
            assert box and box["height"] >= 280 and box["width"] >= 400
            kpi_box = await page.locator("#chart-accuracy").bounding_box()
            assert kpi_box and kpi_box["height"] >= 300
            funnel_text = await page.locator("#chart-funnel").inner_text()
            assert "自助服务" in funnel_text and "机器人建议" in funnel_text
            assert blocked == []
            assert "自助服务占比" in await page.locator("#kpi-self-service").inner_text()
            await page.select_option("select[name=period]", "week")
            await page.click("#dash-filters button")
            await page.wait_for_url("**period=week**")
            assert "按周" in await page.locator("#per-period h2").inner_text()
            # English works too
            await page.goto(f"{base}/dashboard?lang=en")
            assert await page.locator("h1").inner_text() == "Service dashboard"

            # the offer editor: create an offer, then see it listed
            await page.goto(f"{base}/admin/offers/new?lang=zh_CN")
            await page.fill("input[name=title]", "流量叠加包")
            await page.fill("textarea[name=body]", "{{ member.name }}您好，10 元 10GB")
            await page.fill("input[name=url]", "https://shop.example/addon")
            await page.fill("input[name=action_label]", "开通流量叠加包")
            await page.fill("input[name=trigger_categories]", "data")
            await page.check("input[name=channels][value=web]")
            await page.fill("input[name=daily_budget]", "100")
            await page.click("#offer-form button[type=submit]")
            await page.wait_for_url("**/admin/offers?saved=*")
            assert "流量叠加包" in await page.locator("#offers").inner_text()
            offer = await Offer.get(title="流量叠加包")
            assert offer.channels == ["web"] and offer.daily_budget == 100 and offer.active
            # a bad link is refused with the form kept
            await page.goto(f"{base}/admin/offers/{offer.id}")
            await page.fill("input[name=url]", "javascript:alert(1)")
            await page.evaluate("document.querySelector('input[name=url]').type = 'text'")
            await page.click("#offer-form button[type=submit]")
            assert await page.locator("[role=alert]").is_visible()
            assert (await Offer.get(id=offer.id)).url == "https://shop.example/addon"
            assert blocked == []  # no CDN, nothing fetched from elsewhere
