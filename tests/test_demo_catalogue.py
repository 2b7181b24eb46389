"""``make demo`` gives a first visitor something to redeem and an offer to see."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import pytest

from bot.core.app_keys import SERVICES
from bot.core.settings import Settings
from community.offers.demo import demo_offer
from community.offers.models import Offer
from gamification.demo import SAMPLE_REWARDS, demo_rewards
from gamification.models import Reward
from tests.community_helpers import chat
from tests.conftest import make_settings


@pytest.fixture
def settings(tmp_path: Path) -> Settings:
    return make_settings(tmp_path, offers_quiet_hours="")  # the test may run at any hour


async def test_demo_catalogue_is_created_once_and_used(client) -> None:
    settings = client.app[SERVICES].settings
    for _ in range(2):  # make demo runs on every start
        await demo_rewards(settings)
        await demo_offer(settings)
    assert await Reward.all().count() == len(SAMPLE_REWARDS)
    assert await Offer.all().count() == 1
    replies = await chat(client, "demo-visitor", text="我的流量还剩多少，怎么查？")
    shown = " ".join([r["text"] for r in replies] + [c["label"] for r in replies for c in r["choices"]])
    assert "开通流量叠加包" in shown or "叠加包" in shown, shown


async def test_demo_keeps_an_operators_own_catalogue(client) -> None:
    await Reward.create(name="own", kind="gift", cost=1, stock=1)
    await demo_rewards(client.app[SERVICES].settings)
    assert await Reward.all().values_list("name", flat=True) == ["own"]


async def test_marketer_page_explains_quiet_hours(tmp_path: Path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from bot.app import create_app
    from tests.community_helpers import staff_login

    # quiet hours around the present moment, so the page says offers are paused right now
    now = datetime.now(ZoneInfo("Asia/Shanghai"))
    start, end = (now - timedelta(hours=1)).strftime("%H:%M"), (now + timedelta(hours=1)).strftime("%H:%M")
    app = create_app(make_settings(tmp_path, offers_quiet_hours=f"{start}-{end}"), db_setup="schema")
    async with TestClient(TestServer(app)) as c:
        await staff_login(c, "mkt", ["marketer"])
        html = await (await c.get("/admin/offers?lang=zh_CN")).text()
        assert f"免打扰时段：{start}–{end}" in html and "现在是免打扰时段" in html, html
        html = await (await c.get("/admin/offers?lang=en")).text()
        assert f"It is quiet hours now: offers resume at {end}." in html
