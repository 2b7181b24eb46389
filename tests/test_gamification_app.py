"""Gamification end to end: forwarding, /points, /top, /redeem, pages, top-ups, badges."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.core.app_keys import SERVICES
from bot.core.messages import Incoming
from bot.core.models import ChannelAccount, Member, OutboxMessage
from bot.staff.auth import create_staff
from community.models import KnowledgeItem
from gamification import ledger
from gamification.models import (
    Balance,
    ForwardEngagement,
    ForwardLink,
    ForwardRating,
    LedgerEntry,
    MemberBadge,
    Redemption,
    ReviewFlag,
    Reward,
)
from gamification.service import GAMIFICATION, Gamification
from tests.community_helpers import chat
from tests.conftest import load_sample_kb, make_settings
from tests.fakes.topup import FakeTopupProvider
from tests.forward_helpers import tap_helped, tap_rating
from tests.trust_helpers import make_trusted, trusted_member


async def member_of(channel: str, user: str) -> Member:
    return (await ChannelAccount.get(channel=channel, external_id=user).select_related("member")).member


async def share_token(client, user: str) -> tuple[str, KnowledgeItem]:  # type: ignore[no-untyped-def]
    replies = await chat(client, user, text="我的流量还剩多少，怎么查？")
    fw = next(c["action"] for c in replies[0]["choices"] if c["action"].startswith("fw:"))
    shared = await chat(client, user, action=fw)
    url = shared[0]["cards"][0]["url"]
    assert "/f/" in url and url in shared[0]["text"]
    token = url.rsplit("/f/", 1)[1]
    return token, await KnowledgeItem.get(id=int(fw.split(":")[1]))


async def test_web_forward_pays_once_per_new_distinct_visitor(client) -> None:
    token, item = await share_token(client, "sharer1")
    sharer = await member_of("web", "sharer1")
    link = await ForwardLink.get(token=token)
    assert link.creator_fingerprint  # the device the link was made from is written down
    rules = client.app[GAMIFICATION].rules
    # a stranger opens it (a GET, as a link previewer would): nothing is recorded or paid
    page = await client.get(f"/f/{token}", headers={"User-Agent": "phone-A"})
    assert page.status == 200 and item.title in await page.text()
    assert not await ForwardEngagement.filter(link__token=token).exists()
    bal = await ledger.balance_of(sharer.id)
    assert (bal.balance, bal.held) == (0, 0)
    # they tap "this helped me": points = base × difficulty × breadth (new person), pending (an
    # anonymous visitor is trust level 0) until the hold passes
    helped = await tap_helped(client, token, {"User-Agent": "phone-A"})
    assert helped.status == 200 and f"/f/{token}" in str(helped.url)
    expected = rules.forward_points(item.difficulty, True)
    bal = await ledger.balance_of(sharer.id)
    assert (bal.balance, bal.held) == (0, expected)
    # the same visitor again, and again with a cleared cookie: the same device, nothing more
    await tap_helped(client, token, {"User-Agent": "phone-A"})
    client.session.cookie_jar.clear()
    await tap_helped(client, token, {"User-Agent": "phone-A"})
    assert (await ledger.balance_of(sharer.id)).held == expected
    assert await ForwardEngagement.filter(link__token=token).count() == 1
    # they rate it accurate, once; an anonymous rating weighs nothing in credibility
    rated = await tap_rating(client, token, True, {"User-Agent": "phone-A"})
    assert rated.status == 200 and "/f/" in str(rated.url)
    again = await tap_rating(client, token, False, {"User-Agent": "phone-A"})
    assert again.status == 200
    assert [(r.accurate, r.weight) for r in await ForwardRating.filter(sharer_id=sharer.id)] == [(True, 0.0)]
    # other browsers on one network pay only up to the per-network cap
    for ua in ("phone-B", "phone-C", "phone-D", "phone-E"):
        await tap_helped(client, token, {"User-Agent": ua})
    paid = await ForwardEngagement.filter(link__token=token, paid=True).count()
    assert paid == rules.per_network_daily_cap
    assert await ForwardEngagement.filter(link__token=token).count() == 5
    # the sharer's own device (the one they shared from), cookies cleared: never pays
    before = await ledger.balance_of(sharer.id)
    for _ in range(3):
        client.session.cookie_jar.clear()
        own = await tap_helped(client, token)
        assert own.status == 200
    after = await ledger.balance_of(sharer.id)
    assert (after.balance, after.held) == (before.balance, before.held)


async def test_unknown_forward_link_is_a_polite_404(client) -> None:
    resp = await client.get("/f/nosuchtoken123")
    assert resp.status == 404
    assert "no longer available" in await resp.text() or "不存在" in await resp.text() or "失效" in await resp.text()
    for action in ("read", "rate"):
        bad = await client.post(f"/f/nosuchtoken123/{action}", data={"accurate": "1"})
        assert bad.status == 404


async def test_deep_link_start_pays_sharer_not_own_accounts(client, services) -> None:
    token, item = await share_token(client, "sharer2")
    sharer = await member_of("web", "sharer2")
    # the sharer's own account opening it earns nothing
    own = await services.pipeline.process(
        Incoming(channel="web", user="sharer2", event="start", payload=f"fw_{token}", msg_id="o1")
    )
    assert own[0].kind == "answer"
    assert (await ledger.balance_of(sharer.id)).held == 0
    # a Telegram friend via /start fw_<token>
    replies = await services.pipeline.process(
        Incoming(channel="telegram", user="777", event="start", payload=f"fw_{token}", msg_id="t1")
    )
    assert item.title in replies[0].text
    actions = [c.action for c in replies[0].choices]
    assert actions == [f"fwr:{token}:1", f"fwr:{token}:0"]
    first = (await ledger.balance_of(sharer.id)).held  # a new Telegram account: pending
    assert first == client.app[GAMIFICATION].rules.forward_points(item.difficulty, True)
    assert (await ledger.balance_of(sharer.id)).balance == 0
    # replay of the same start and a second start: never twice per recipient + item
    await services.pipeline.process(
        Incoming(channel="telegram", user="777", event="start", payload=f"fw_{token}", msg_id="t1")
    )
    await services.pipeline.process(
        Incoming(channel="telegram", user="777", event="start", payload=f"fw_{token}", msg_id="t2")
    )
    assert (await ledger.balance_of(sharer.id)).held == first
    rated = await services.pipeline.process(
        Incoming(channel="telegram", user="777", action=f"fwr:{token}:0", msg_id="t3")
    )
    assert rated[0].kind == "feedback"
    assert await ForwardRating.filter(sharer_id=sharer.id, accurate=False).count() == 1
    bad = await services.pipeline.process(
        Incoming(channel="telegram", user="777", event="start", payload="fw_bogus", msg_id="t4")
    )
    assert bad[0].kind == "error"


async def test_telegram_share_link_is_a_deep_link(tmp_path: Path) -> None:
    app = create_app(make_settings(tmp_path, telegram_bot_username="everycsr_bot"), db_setup="schema")
    async with TestClient(TestServer(app)):
        await load_sample_kb(app)
        services = app[SERVICES]
        item = await KnowledgeItem.filter(status="published").first()
        replies = await services.pipeline.process(
            Incoming(channel="telegram", user="42", action=f"fw:{item.id}", msg_id="x")
        )
        assert re.search(r"https://t\.me/everycsr_bot\?start=fw_[\w-]+", replies[0].text)


async def test_sms_zf_sends_with_sender_and_opt_out_and_refuses_opted_out(client, services) -> None:
    sender = "+8613800138000"
    item = await KnowledgeItem.filter(status="published", sms_code__not_isnull=True).first()
    replies = await services.pipeline.process(
        Incoming(channel="sms", user=sender, text=f"ZF {item.sms_code} 13900139000", msg_id="s1")
    )
    assert replies[0].kind == "forward" and "****" in replies[0].text
    out = await OutboxMessage.get(purpose="forward")
    assert out.channel == "sms" and out.address == "+8613900139000"
    text = out.payload["text"]
    # the first message to a number says who we are, who sent it and how to stop
    assert "138****8000" in text and "TD" in text and item.title in text and "第一" in text
    # the friend writes back: engagement, the sharer earns
    sharer = await member_of("sms", sender)
    await services.pipeline.process(Incoming(channel="sms", user="+8613900139000", text="1", msg_id="s2"))
    assert (await ledger.balance_of(sharer.id)).held > 0  # the friend is a new member: pending
    assert await ForwardRating.filter(sharer_id=sharer.id, accurate=True).count() == 1
    # an opted-out number is refused and nothing is queued
    opted = await member_of("sms", "+8613900139000")
    await Member.filter(id=opted.id).update(opted_out=True)
    await services.pipeline.process(
        Incoming(channel="sms", user="+8613700137000", text=f"ZF {item.sms_code} 13900139000", msg_id="s3")
    )
    assert await OutboxMessage.filter(purpose="forward").count() == 1
    bad = await services.pipeline.process(Incoming(channel="sms", user=sender, text="ZF nonsense", msg_id="s4"))
    assert "ZF" in bad[0].text


async def test_points_top_and_accepted_answers(client, services, gam) -> None:
    await chat(client, "helper", text="你好")
    await chat(client, "asker", text="你好")
    helper, asker = await member_of("web", "helper"), await make_trusted(await member_of("web", "asker"))
    assert await gam.on_answer_accepted(answer_id=1, answerer_id=helper.id, asker_id=helper.id) is None
    res = await gam.on_answer_accepted(answer_id=2, answerer_id=helper.id, asker_id=asker.id, question_id=9)
    assert res is not None and res.granted == 20
    again = await gam.on_answer_accepted(answer_id=2, answerer_id=helper.id, asker_id=asker.id)
    assert again is not None and again.duplicate
    # first accepted answer badge: granted and notified once, in the member's language
    assert await MemberBadge.filter(member_id=helper.id, code="first_accept").count() == 1
    notes = await OutboxMessage.filter(member_id=helper.id, purpose="notification")
    assert len(notes) == 1 and "徽章" in notes[0].payload["text"]
    replies = await chat(client, "helper", text="积分")
    assert replies[0]["kind"] == "points" and "20" in replies[0]["text"]
    top = await chat(client, "asker", text="排行")
    assert top[0]["kind"] == "leaderboard" and "20" in top[0]["text"]
    assert "1." in top[0]["text"]
    # a deleted answer takes exactly the points back
    await gam.on_content_removed("answer:2")
    assert (await ledger.balance_of(helper.id)).balance == 0


async def test_leaderboard_page_escapes_names_and_hides_staff(client, gam) -> None:
    evil = await Member.create(display_name="<script>alert(1)</script>")
    staff = await Member.create(display_name="StaffPerson", is_staff=True)
    await gam.award(evil.id, "answer_accepted", "answer:77")
    await gam.award(staff.id, "answer_accepted", "answer:78")
    resp = await client.get("/leaderboard?period=all")
    html = await resp.text()
    assert resp.status == 200
    assert "&lt;script&gt;" in html and "<script>alert" not in html
    assert "StaffPerson" not in html


async def test_ring_of_mutual_accepts_is_flagged_and_held(client, gam) -> None:
    a, b = await trusted_member(), await trusted_member()
    for i in range(2):
        await gam.on_answer_accepted(answer_id=100 + i, answerer_id=a.id, asker_id=b.id)
    for i in range(2):
        await gam.on_answer_accepted(answer_id=200 + i, answerer_id=b.id, asker_id=a.id)
    # the pair limit (2 a week) stops a third; a pair ring needs min_each_way (3) each way
    assert (await gam.on_answer_accepted(answer_id=300, answerer_id=a.id, asker_id=b.id)).note == "pair limit"
    assert (await Balance.get(member_id=a.id)).balance == 40
    assert await ReviewFlag.filter(reason="ring").count() == 0
    # a week later (the pair limit has passed), a third accept each way closes the ring
    await LedgerEntry.filter(member_id__in=[a.id, b.id]).update(
        created_at=datetime.now(timezone.utc) - timedelta(days=8)
    )
    assert (await gam.on_answer_accepted(answer_id=301, answerer_id=a.id, asker_id=b.id)).granted == 20
    await gam.on_answer_accepted(answer_id=302, answerer_id=b.id, asker_id=a.id)
    # one review item for the pair, the closing award held
    flags = await ReviewFlag.filter(reason="ring", status="open")
    assert (
        len(flags) == 1 and flags[0].member_id == b.id and flags[0].key == f"ring:{min(a.id, b.id)}:{max(a.id, b.id)}"
    )
    bal_b = await Balance.get(member_id=b.id)
    assert bal_b.held == 20 and bal_b.balance == 40
    assert (await Balance.get(member_id=a.id)).balance == 60
    # later earnings of the flagged member are held too; clearing releases them
    await gam.on_contribution_approved(5, b.id)
    assert (await Balance.get(member_id=b.id)).held == 50
    await ReviewFlag.filter(member_id=b.id).update(status="cleared")
    assert await gam.release_held(b.id) == 50
    assert (await Balance.get(member_id=b.id)).balance == 90
    assert await gam.release_held(b.id) == 0


async def login_admin(client) -> str:  # type: ignore[no-untyped-def]
    await create_staff("root", "secret-pass-1", ["admin"])
    resp = await client.post("/login", data={"username": "root", "password": "secret-pass-1", "next": "/admin/rewards"})
    html = await resp.text()
    return re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)


async def test_rewards_admin_requires_admin_and_csrf(client) -> None:
    anon = await client.get("/admin/rewards", allow_redirects=False)
    assert anon.status == 302 and anon.headers["Location"].startswith("/login")
    csrf = await login_admin(client)
    no_csrf = await client.post("/admin/rewards", data={"name": "X", "kind": "gift", "cost": "10"})
    assert no_csrf.status == 403
    made = await client.post(
        "/admin/rewards",
        data={
            "csrf_token": csrf,
            "name": "<b>Mug</b>",
            "kind": "gift",
            "cost": "50",
            "stock": "3",
            "per_member_limit": "1",
            "face_value": "0",
            "active": "on",
        },
    )
    assert made.status == 200 and "&lt;b&gt;Mug&lt;/b&gt;" in await made.text()
    bad = await client.post("/admin/rewards", data={"csrf_token": csrf, "name": "Y", "kind": "gift", "cost": "abc"})
    assert bad.status == 400
    assert await Reward.filter(name="<b>Mug</b>", cost=50, stock=3).count() == 1


async def test_gift_redemption_via_chat_and_manual_queue_refund(client, services, gam) -> None:
    reward = await Reward.create(name="Umbrella", kind="gift", cost=30, stock=5, per_member_limit=1)
    await chat(client, "buyer", text="你好")
    buyer = await member_of("web", "buyer")
    unverified = await chat(client, "buyer", action=f"rd:{reward.id}")
    assert "不够" in unverified[0]["text"]  # the balance is checked before anything is asked
    await make_trusted(buyer, level=1)
    await gam.award(buyer.id, "answer_accepted", "answer:300")
    await gam.award(buyer.id, "answer_accepted", "answer:301")
    menu = await chat(client, "buyer", text="兑换")
    assert any(c["action"] == f"rd:{reward.id}" for c in menu[0]["choices"])
    done = await chat(client, "buyer", action=f"rd:{reward.id}")
    assert "Umbrella" in done[0]["text"]
    assert (await ledger.balance_of(buyer.id)).balance == 10
    limited = await chat(client, "buyer", action=f"rd:{reward.id}")
    assert "10" not in limited[0]["text"] or "already" in limited[0]["text"] or "已" in limited[0]["text"]
    assert await Redemption.filter(member_id=buyer.id).count() == 1
    # staff mark it failed: points and stock come back, once
    csrf = await login_admin(client)
    order = await Redemption.get(member_id=buyer.id)
    for _ in range(2):
        await client.post(
            f"/admin/redemptions/{order.id}", data={"csrf_token": csrf, "action": "failed", "note": "lost"}
        )
    assert (await ledger.balance_of(buyer.id)).balance == 40
    assert (await Reward.get(id=reward.id)).stock == 5
    assert await LedgerEntry.filter(member_id=buyer.id, event="reversal").count() == 1


@pytest_asyncio.fixture
async def topup_env(tmp_path: Path) -> AsyncIterator[tuple[TestClient, FakeTopupProvider]]:
    provider = FakeTopupProvider(
        secret="topup-secret-1", fail_numbers={"+8613900000002"}, refuse_numbers={"+8613900000003"}
    )
    await provider.start()
    app = create_app(
        make_settings(tmp_path, topup_api_base=provider.url, topup_secret="topup-secret-1"), db_setup="schema"
    )
    async with TestClient(TestServer(app)) as c:
        c.app[GAMIFICATION].callback_url = str(c.make_url("/api/v1/topup/callback"))
        yield c, provider
    await provider.stop()


async def _settle(gam: Gamification, provider: FakeTopupProvider, n: int) -> None:
    import asyncio

    deadline = asyncio.get_running_loop().time() + 10.0
    while True:
        await gam.background.wait()
        if len(provider.callbacks) >= n:
            return
        assert asyncio.get_running_loop().time() < deadline, f"{len(provider.callbacks)} of {n} callbacks"
        await asyncio.sleep(0.01)


async def test_topup_success_failure_and_refusal(topup_env) -> None:
    client, provider = topup_env
    gam = client.app[GAMIFICATION]
    reward = await Reward.create(name="10元话费", kind="topup", cost=50, stock=10, per_member_limit=5, face_value=10)
    members = []
    for phone in ("+8613900000001", "+8613900000002", "+8613900000003"):
        m = await Member.create()
        await make_trusted(m, level=1, phone=phone)
        for i in range(10):
            await gam.award(m.id, "contribution_approved", f"contribution:t{m.id}:{i}")
        members.append(m)
    ok = await gam.redeem(members[0].id, reward.id, request_key="k1")
    failed = await gam.redeem(members[1].id, reward.id, request_key="k2")
    refused = await gam.redeem(members[2].id, reward.id, request_key="k3")
    assert (ok.phone, failed.phone) == ("+8613900000001", "+8613900000002")  # the verified number, only
    await _settle(gam, provider, 2)
    assert provider.bad_signatures == 0
    assert (await Redemption.get(id=ok.id)).status == "fulfilled"
    assert (await Redemption.get(id=failed.id)).status == "failed"
    assert (await Redemption.get(id=refused.id)).status == "failed"
    # 300 − 50 (the fulfilled one); the failed and refused ones were refunded
    assert [(await ledger.balance_of(m.id)).balance for m in members] == [250, 300, 300]
    # a replayed callback changes nothing; a forged one is refused; junk is a 400
    status, payload = provider.callbacks[0]
    import json
    import time

    from gamification.topup import sign

    body = json.dumps({**payload, "status": "failed"}).encode()
    ts = str(int(time.time()))
    replay = await client.post(
        "/api/v1/topup/callback",
        data=body,
        headers={"X-Timestamp": ts, "X-Signature": sign("topup-secret-1", ts, body)},
    )
    assert replay.status == 200 and (await replay.json())["changed"] is False
    forged = await client.post(
        "/api/v1/topup/callback", data=body, headers={"X-Timestamp": ts, "X-Signature": "0" * 64}
    )
    assert forged.status == 403
    junk = b"{not json"
    bad = await client.post(
        "/api/v1/topup/callback",
        data=junk,
        headers={"X-Timestamp": ts, "X-Signature": sign("topup-secret-1", ts, junk)},
    )
    assert bad.status == 400 and "error" in await bad.json()
    assert [(await ledger.balance_of(m.id)).balance for m in members] == [250, 300, 300]
