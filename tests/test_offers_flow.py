"""Offers end to end: appended to answers, tracked clicks, acceptance, marketer pages."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.core.app_keys import SERVICES
from bot.core.models import ChannelAccount, Member
from bot.staff.auth import create_staff
from community.offers.engine import conversation_block
from community.offers.models import Offer, OfferEvent
from tests.community_helpers import chat
from tests.conftest import load_sample_kb, make_settings

QUESTION = "我的流量还剩多少，怎么查？"


@pytest_asyncio.fixture
async def client(tmp_path: Path):  # type: ignore[no-untyped-def]
    """The app with offers on at any time of day (no quiet hours) and a known public URL."""
    app = create_app(
        make_settings(tmp_path, offers_quiet_hours="", public_url="https://csr.example"), db_setup="schema"
    )
    async with TestClient(TestServer(app)) as c:
        await load_sample_kb(app)
        yield c


async def make_offer(**kw: object) -> Offer:
    values: dict[str, object] = dict(
        title="流量叠加包 10元10GB",
        body="{{ member.name }}您好，加购更划算",
        url="https://shop.example/addon?x=1",
        action_label="开通流量叠加包",
        trigger_categories=["data"],
    )
    values.update(kw)
    return await Offer.create(**values)


async def login(client, role: str = "marketer") -> str:  # type: ignore[no-untyped-def]
    await create_staff(f"staff-{role}", "secret-pass-1", [role])
    resp = await client.post(
        "/login",
        data={"username": f"staff-{role}", "password": "secret-pass-1", "next": "/staff"},
        allow_redirects=False,
    )
    assert resp.status == 302
    page = await (await client.get("/admin/offers/new")).text() if role in ("marketer", "admin") else ""
    marker = 'name="csrf_token" value="'
    return page.split(marker, 1)[1].split('"', 1)[0] if marker in page else ""


async def test_answer_gets_offer_card_and_impression(client) -> None:
    offer = await make_offer()
    replies = await chat(client, user="o1", text=QUESTION, display_name="x")
    card = replies[0]["cards"][0]
    assert card["title"] == offer.title and card["description"] == "您好，加购更划算"
    assert card["url"].startswith("https://csr.example/o/")
    token = card["url"].rsplit("/", 1)[1]
    assert replies[0]["choices"][-1] == {"label": "开通流量叠加包", "action": f"offer:{token}"}
    ev = await OfferEvent.get(token=token, kind="impression")
    assert ev.channel == "web" and ev.category == "data" and ev.item_id is not None and ev.query == QUESTION
    # the frequency cap: a second answer the same day gets no offer
    again = await chat(client, user="o1", text=QUESTION)
    assert again[0]["cards"] == []
    assert await OfferEvent.filter(kind="impression").count() == 1


async def test_no_offer_for_non_matching_or_non_answers(client) -> None:
    await make_offer(trigger_categories=["broadband"])
    replies = await chat(client, user="o2", text=QUESTION)
    assert replies[0]["kind"] == "answer" and replies[0]["cards"] == []
    none = await chat(client, user="o3", text="火星上明天会下雨吗")
    assert none[0]["cards"] == [] and await OfferEvent.all().count() == 0


async def test_opted_out_member_and_agent_conversation_get_no_offer(client) -> None:
    await make_offer()
    await chat(client, user="o4", text="你好")
    account = await ChannelAccount.get(channel="web", external_id="o4")
    await Member.filter(id=account.member_id).update(opted_out=True)
    assert (await chat(client, user="o4", text=QUESTION))[0]["cards"] == []
    services = client.app[SERVICES]
    await chat(client, user="o5", text="你好")
    acc5 = await ChannelAccount.get(channel="web", external_id="o5")
    await services.state.set(f"member:{acc5.member_id}", {"agent_ticket": 12}, 60)
    assert (await chat(client, user="o5", text=QUESTION))[0]["cards"] == []
    assert await OfferEvent.all().count() == 0


async def test_open_ticket_blocks_offers(client) -> None:
    from datetime import datetime, timedelta, timezone

    from community.inbox.models import Ticket

    member = await Member.create(display_name="t")
    now = datetime.now(timezone.utc)
    assert await conversation_block(member.id, {}) is None
    t = await Ticket.create(
        member=member,
        channel="web",
        reason="complaint",
        open_key=member.id,
        first_response_due=now + timedelta(hours=1),
        resolution_due=now + timedelta(days=1),
    )
    assert await conversation_block(member.id, {}) == "complaint"
    await Ticket.filter(id=t.id).update(reason="human", status="claimed")
    assert await conversation_block(member.id, {}) == "agent"
    await Ticket.filter(id=t.id).update(status="closed", open_key=None)
    assert await conversation_block(member.id, {}) is None


async def test_tracked_click_redirects_only_to_the_offer_url_once_counted(client) -> None:
    offer = await make_offer()
    token = (await chat(client, user="o6", text=QUESTION))[0]["cards"][0]["url"].rsplit("/", 1)[1]
    for _ in range(2):
        resp = await client.get(f"/o/{token}?next=https://evil.example", allow_redirects=False)
        assert resp.status == 302 and resp.headers["Location"] == offer.url
    assert await OfferEvent.filter(token=token, kind="click").count() == 1
    assert (await client.get("/o/not-a-real-token", allow_redirects=False)).status == 404
    # an offer whose URL was tampered with in the database is not followed
    await Offer.filter(id=offer.id).update(url="javascript:alert(1)")
    assert (await client.get(f"/o/{token}", allow_redirects=False)).status == 404


async def test_accepting_records_once_and_only_for_the_member(client) -> None:
    await make_offer()
    replies = await chat(client, user="o7", text=QUESTION)
    action = replies[0]["choices"][-1]["action"]
    stranger = await chat(client, user="o8", action=action)
    assert stranger[0]["kind"] == "error"
    first = await chat(client, user="o7", action=action, msg_id="a1")
    assert first[0]["kind"] == "offer_accept" and "流量叠加包" in first[0]["text"]
    second = await chat(client, user="o7", action=action, msg_id="a2")
    assert second[0]["kind"] == "offer_accept"
    assert await OfferEvent.filter(kind="accept").count() == 1


async def test_budget_holds_under_concurrent_answers(client) -> None:
    await make_offer(daily_budget=3)
    results = await asyncio.gather(*(chat(client, user=f"c{i}", text=QUESTION) for i in range(8)))
    shown = sum(1 for r in results if r[0]["cards"])
    assert await OfferEvent.filter(kind="impression").count() == shown == 3


async def test_marketer_creates_edits_and_validates_offers(client) -> None:
    csrf = await login(client)
    form = {
        "csrf_token": csrf,
        "title": "宽带提速",
        "body": "{{ member.name }} 提速",
        "url": "https://shop.example/bb",
        "action_label": "",
        "trigger_items": "1, 2",
        "trigger_categories": "broadband",
        "trigger_keywords": "宽带，网速",
        "trigger_tags": "plan:*",
        "channels": "wechat",
        "locales": "zh_CN",
        "starts_at": "2026-01-01T08:00",
        "ends_at": "",
        "daily_budget": "50",
        "repeat_days": "7",
        "priority": "3",
        "active": "on",
    }
    resp = await client.post("/admin/offers/new", data=form, allow_redirects=False)
    assert resp.status == 302, await resp.text()
    offer = await Offer.get(title="宽带提速")
    assert offer.trigger_items == [1, 2] and offer.trigger_keywords == ["宽带", "网速"] and offer.channels == ["wechat"]
    assert offer.starts_at.hour == 0  # 08:00 Shanghai is 00:00 UTC
    bad = dict(form, url="javascript:alert(1)", body="{{ oops", title="")
    resp = await client.post(f"/admin/offers/{offer.id}", data=bad)
    text = await resp.text()
    assert resp.status == 400 and "url" in text and "body" in text
    assert (await Offer.get(id=offer.id)).url == "https://shop.example/bb"  # nothing half-written
    resp = await client.post(
        f"/admin/offers/{offer.id}", data=dict(form, title="宽带提速 v2", active=""), allow_redirects=False
    )
    assert resp.status == 302
    updated = await Offer.get(id=offer.id)
    assert updated.title == "宽带提速 v2" and not updated.active
    # no CSRF token: refused, nothing changed
    resp = await client.post(f"/admin/offers/{offer.id}", data=dict(form, csrf_token=""))
    assert resp.status == 403
    assert (await client.get("/admin/offers/999999")).status == 404
    page = await (await client.get("/admin/offers")).text()
    assert "宽带提速 v2" in page


async def test_agents_cannot_manage_offers(client) -> None:
    await login(client, role="agent")
    assert (await client.get("/admin/offers", allow_redirects=False)).status == 403
    assert (await client.get("/dashboard")).status == 200


async def test_records_search_csv_and_conversion(client) -> None:
    offer = await make_offer()
    other = await make_offer(title="<script>x</script>", trigger_categories=["billing"], action_label="")
    replies = await chat(client, user="r1", text=QUESTION)
    token = replies[0]["cards"][0]["url"].rsplit("/", 1)[1]
    await client.get(f"/o/{token}", allow_redirects=False)
    acc = await ChannelAccount.get(channel="web", external_id="r1")
    await Member.filter(id=acc.member_id).update(tags=["vip"])
    await chat(client, user="r1", action=f"offer:{token}")
    await login(client)
    page = await (await client.get(f"/admin/offers/records?offer={offer.id}&channel=web")).text()
    # the kinds are shown translated (the page is in zh_CN by default)
    assert page.count("<td>曝光</td>") == 1 and "<td>点击</td>" in page
    assert "&lt;script&gt;" in page and "<script>x" not in page  # escaped in the offer dropdown
    listing = await (await client.get("/admin/offers")).text()
    assert "100.0%" in listing  # 1 accept / 1 impression
    csv = await (await client.get("/admin/offers/records?format=csv&kind=click")).text()
    lines = csv.strip().splitlines()
    assert lines[0].lstrip("\ufeff").startswith("time,kind,offer_id") and len(lines) == 2 and ",click," in lines[1]
    none = await (await client.get(f"/admin/offers/records?format=csv&offer={other.id}")).text()
    assert len(none.strip().splitlines()) == 1
    by_tag = await (await client.get("/admin/offers/records?format=csv&tag=vip")).text()
    assert len(by_tag.strip().splitlines()) == 1  # the impression was recorded before the tag was added
    conv = await (await client.get("/admin/offers?format=csv")).text()
    assert f"{offer.id},流量叠加包 10元10GB,True,1,1,1,1.0000,1.0000" in conv
    assert (await client.get("/admin/offers/records?from=yesterday")).status == 400


async def test_preview_explains_why_not(client) -> None:
    await make_offer(title="流量包")
    await make_offer(title="宽带", trigger_categories=["broadband"])
    await make_offer(title="关掉的", active=False)
    await chat(client, user="p1", text="你好")
    await login(client)
    page = await (await client.get("/admin/offers/preview", params={"member": "web:p1", "q": QUESTION})).text()
    chosen = page.split('id="chosen"', 1)[1].split("</div>", 1)[0]
    assert "流量包" in chosen
    assert "其触发条件" in page or "none of its triggers" in page
    assert "已关闭" in page or "switched off" in page
    missing = await (await client.get("/admin/offers/preview", params={"member": "nobody", "q": "x"})).text()
    assert "No such member" in missing or "没有这个会员" in missing


async def test_history_counts_today_and_recent_impressions(client) -> None:
    from datetime import datetime, timedelta, timezone

    from community.offers.engine import load_history
    from community.offers.service import rules_for

    rules = rules_for(client.app[SERVICES].settings)
    now = datetime(2026, 11, 26, 6, 0, tzinfo=timezone.utc)  # 14:00 Shanghai
    budgeted = await make_offer(daily_budget=5, repeat_days=3)
    plain = await make_offer(title="plain")
    me, other = await Member.create(), await Member.create()
    for i, (offer, member, at) in enumerate(
        [
            (budgeted, me, now - timedelta(hours=1)),  # today
            (budgeted, other, now - timedelta(hours=5)),  # today (09:00 local), someone else
            (plain, me, now - timedelta(hours=15)),  # yesterday 23:00 local: not today, but recent
            (budgeted, other, now - timedelta(hours=15)),  # yesterday: not in today's budget
            (plain, me, now - timedelta(days=30)),  # beyond every repeat limit
        ]
    ):
        ev = await OfferEvent.create(offer=offer, kind="impression", token=f"tok{i}", member=member)
        await OfferEvent.filter(id=ev.id).update(created_at=at)
    history = await load_history(me.id, now, rules, [budgeted, plain])
    assert history.member_offers_today == 1
    assert history.impressions_today == {budgeted.id: 2}
    assert history.last_shown == {budgeted.id: now - timedelta(hours=1), plain.id: now - timedelta(hours=15)}
