"""Trust (issue 16): levels, pending points and their release, weights, caps, rings and
farms, forwards counted by member or device, ZF limits, redemption to the verified phone.

Members chat through the real HTTP API (``/api/v1/chat`` as verified web users, ``/f/<token>``)
and the real pipeline; the hypothesis properties drive the scoring service directly."""

from __future__ import annotations

import os
import subprocess
import sys
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings as hsettings, strategies as st
from tortoise.functions import Sum

from bot.core import storage
from bot.core.app_keys import SERVICES
from bot.core.messages import Incoming
from bot.core.models import ChannelAccount, Member, OutboxMessage
from bot.core.settings import ROOT
from community.models import KnowledgeItem
from gamification import graph, ledger, trust
from gamification.models import Balance, ForwardRating, LedgerEntry, Redemption, ReviewFlag, Reward, SmsForward
from gamification.rules import load_rules, parse_rules
from tests.forward_helpers import tap_helped, tap_rating
from tests.community_helpers import chat, csrf, staff_login
from tests.gamification_helpers import standalone
from tests.trust_helpers import make_trusted, trusted_member

RULES = load_rules()


async def member_of(user: str) -> Member:
    return (await ChannelAccount.get(channel="web", external_id=user).select_related("member")).member


async def points(member_id: int) -> tuple[int, int]:
    bal = await ledger.balance_of(member_id)
    return bal.balance, bal.held


async def peer_answer(client: Any, asker: str, helper: str, n: int) -> tuple[str, int]:
    """``asker`` posts a question, ``helper`` answers it; the question code and answer id."""
    posted = await chat(client, asker, text=f"/ask 第{n}个问题：我家的猫为什么总是半夜唱京剧？")
    code = posted[0]["cards"][0]["title"]
    await chat(client, helper, action=f"ans:{code}")
    assert (await chat(client, helper, text=f"猫是夜行动物，白天多陪它玩。{n}"))[0]["kind"] == "answered"
    shown = await chat(client, asker, action=f"q:{code}")
    acc = [c["action"] for c in shown[0]["choices"] if c["action"].startswith("acc:")]
    return code, int(acc[0].split(":")[1])


# --- trust levels -------------------------------------------------------------------------------
async def test_trust_levels_come_from_rules_data(client) -> None:
    m = await Member.create()
    assert await trust.trust_level(m) == 0
    await make_trusted(m, level=1)
    assert await trust.trust_level(m) == 1  # verified phone, brand new
    await make_trusted(m, level=2)
    m = await Member.get(id=m.id)
    assert await trust.trust_level(m) == 2  # verified, 90 days old, 12 messages
    await Balance.get_or_create(member_id=m.id)
    await Balance.filter(member_id=m.id).update(lifetime=300)
    assert await trust.trust_level(m) == 2  # level 3 needs 50 messages
    from bot.core.models import TranscriptEntry

    for i in range(40):
        await TranscriptEntry.create(member_id=m.id, channel="web", direction="in", text=f"x{i}")
    assert await trust.trust_level(m) == 3
    await ReviewFlag.create(member_id=m.id, reason="ring", key=f"t:{m.id}")
    assert await trust.trust_level(m) == 2  # an open review item: not a regular
    await Member.filter(id=m.id).update(status="suspended")
    assert await trust.trust_level(await Member.get(id=m.id)) == 0
    # the operator's data decides: one level only, everyone trusted at 0
    flat = parse_rules({"trust": {"levels": {0: {"name": "everyone"}}, "hold": {"trusted_level": 0}}})
    assert await trust.trust_level(m, flat) == 0 and trust.pending_until(flat, 0) is None
    standing = await trust.standing_of(await Member.get(id=m.id))
    assert standing == trust.Standing(trust_level=0, balance=0, pending=0)


# --- pending, release, fraud -------------------------------------------------------------------------
async def test_points_from_a_new_askers_accept_are_pending_then_released(client, tmp_path: Path, gam) -> None:
    await chat(client, "helper-p", text="你好")
    helper = await member_of("helper-p")
    _code, answer = await peer_answer(client, "new-asker", "helper-p", 1)
    assert (await chat(client, "new-asker", action=f"acc:{answer}"))[0]["kind"] == "accepted"
    half = int(RULES.events["answer_accepted"].points * RULES.weight("answer_accepted", 0) + 0.5)
    assert await points(helper.id) == (0, half)  # pending, not redeemable
    entry = await LedgerEntry.get(member_id=helper.id, event="answer_accepted")
    assert entry.hold_until is not None and entry.hold_until - entry.created_at >= timedelta(days=RULES.hold_days - 1)
    standing = await trust.standing_of(helper)
    assert (standing.balance, standing.pending) == (0, half)
    # a trusted asker's accept pays at once, the full points
    await chat(client, "old-asker", text="你好")
    await make_trusted(await member_of("old-asker"))
    _code, answer2 = await peer_answer(client, "old-asker", "helper-p", 2)
    await chat(client, "old-asker", action=f"acc:{answer2}")
    assert await points(helper.id) == (RULES.events["answer_accepted"].points, half)
    # the hold is not over yet: the job releases nothing; after it, once
    assert await gam.release_due() == 0
    later = datetime.now(timezone.utc) + timedelta(days=RULES.hold_days, minutes=1)
    assert await gam.release_due(later) == half
    assert await gam.release_due(later) == 0
    assert await points(helper.id) == (RULES.events["answer_accepted"].points + half, 0)


async def test_release_command_pays_out_due_points(tmp_path: Path) -> None:
    url = f"sqlite://{tmp_path / 'cli.sqlite3'}"
    await storage.migrate(url)
    await storage.open_db(url)
    try:
        m = await Member.create()
        due = await ledger.award(m.id, "answer_accepted", 10, key="cli:1", policy=None)
        await LedgerEntry.filter(id=due.entry_id).update(
            granted=0, held=10, hold_until=datetime.now(timezone.utc) - timedelta(hours=1)
        )
        await Balance.filter(member_id=m.id).update(balance=0, held=10)
        not_due = await ledger.award(m.id, "answer_accepted", 7, key="cli:2", policy=None)
        await LedgerEntry.filter(id=not_due.entry_id).update(
            granted=0, held=7, hold_until=datetime.now(timezone.utc) + timedelta(days=3)
        )
        await Balance.filter(member_id=m.id).update(balance=0, held=17)
    finally:
        await storage.close_db()
    env = {**os.environ, "BOT_DATABASE_URL": url, "BOT_REDIS_URL": "", "PYTHONPATH": str(ROOT)}
    for expected in ("released 10 pending points", "released 0 pending points"):
        out = subprocess.run(
            [sys.executable, "-m", "bot", "points", "release"],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=120,
        )
        assert out.returncode == 0, out.stderr
        assert expected in out.stdout
    await storage.open_db(url)
    try:
        bal = await Balance.get(member_id=m.id)
        assert (bal.balance, bal.held) == (10, 7)
    finally:
        await storage.close_db()


async def test_accept_farm_opens_one_review_item_and_confirming_it_reverses_the_points(client, gam) -> None:
    await chat(client, "farmed", text="你好")
    helper = await member_of("farmed")
    for i in range(5):
        _code, answer = await peer_answer(client, f"puppet{i}", "farmed", i)
        await chat(client, f"puppet{i}", action=f"acc:{answer}")
    flags = await ReviewFlag.filter(reason="farm")
    assert len(flags) == 1 and flags[0].member_id == helper.id  # one item, not one per award
    assert len(flags[0].detail["members"]) >= RULES.farm_min_accounts
    balance, held = await points(helper.id)
    assert balance == 0 and 0 < held <= RULES.hold_daily_cap
    # the hold passes, but a member under review is not paid
    later = datetime.now(timezone.utc) + timedelta(days=RULES.hold_days + 1)
    assert await gam.release_due(later) == 0
    # staff confirm the farm: everything held is reversed, never redeemable
    await staff_login(client, "root", ["admin"])
    _html, token = await csrf(client, "/admin/rewards")
    resp = await client.post(f"/admin/flags/{flags[0].id}", data={"csrf_token": token, "action": "confirmed"})
    assert resp.status == 200
    assert await points(helper.id) == (0, 0)
    assert await gam.release_due(later) == 0
    assert await LedgerEntry.filter(member_id=helper.id, event="reversal").count() >= 1


# --- weights and caps ------------------------------------------------------------------------------
async def test_votes_weigh_by_the_voters_trust(client) -> None:
    await chat(client, "voted", text="你好")
    helper = await member_of("voted")
    _code, answer = await peer_answer(client, "vote-asker", "voted", 1)
    for i in range(4):
        await chat(client, f"new-voter{i}", action=f"vote:{answer}")
    assert await points(helper.id) == (0, 0)  # new members' votes weigh nothing
    await chat(client, "verified-voter", text="你好")
    await make_trusted(await member_of("verified-voter"), level=1)
    await chat(client, "verified-voter", action=f"vote:{answer}")
    assert await points(helper.id) == (0, 3)  # verified but new: pending
    await chat(client, "member-voter", text="你好")
    await make_trusted(await member_of("member-voter"))
    await chat(client, "member-voter", action=f"vote:{answer}")
    assert await points(helper.id) == (3, 3)


async def test_accepts_are_capped_per_pair_per_week_and_per_day(client, gam) -> None:
    helper = await trusted_member()
    askers = [await trusted_member() for _ in range(12)]
    pts = RULES.events["answer_accepted"].points
    results = [
        await gam.on_answer_accepted(answer_id=1000 + i, answerer_id=helper.id, asker_id=askers[0].id) for i in range(3)
    ]
    assert [r.granted for r in results] == [pts, pts, 0] and results[2].note == "pair limit"
    for i, asker in enumerate(askers[1:]):
        await gam.on_answer_accepted(answer_id=2000 + i, answerer_id=helper.id, asker_id=asker.id)
    paid = await LedgerEntry.filter(member_id=helper.id, event="answer_accepted", granted__gt=0).count()
    assert paid == RULES.events["answer_accepted"].daily_limit
    assert (await ledger.balance_of(helper.id)).balance == paid * pts


async def test_a_ring_of_three_is_held_under_one_review_item(client, gam) -> None:
    a, b, c = [await trusted_member() for _ in range(3)]
    n = 0

    async def accept(earner: Member, giver: Member) -> ledger.LedgerResult:
        nonlocal n
        n += 1
        res = await gam.on_answer_accepted(answer_id=5000 + n, answerer_id=earner.id, asker_id=giver.id)
        assert res is not None
        return res

    # a rewards b, b rewards c, twice each (the ring's min_step), then c rewards a: the ring closes
    for _ in range(2):
        assert (await accept(b, a)).granted > 0
        assert (await accept(c, b)).granted > 0
    first = await accept(a, c)
    assert first.granted > 0  # one step c -> a is not a ring yet
    closing = await accept(a, c)
    assert closing.granted == 0 and closing.held > 0 and closing.note == "ring"
    flags = await ReviewFlag.filter(reason="ring")
    assert [f.key for f in flags] == [f"ring:{':'.join(str(m) for m in sorted((a.id, b.id, c.id)))}"]
    assert set(flags[0].detail["members"]) == {a.id, b.id, c.id}
    # the ring found again from another member's award: held, still one item
    await LedgerEntry.filter(member_id__in=[a.id, b.id, c.id]).update(
        created_at=datetime.now(timezone.utc) - timedelta(days=8)
    )
    again = await accept(b, a)
    assert again.held > 0 and again.granted == 0
    assert await ReviewFlag.filter(reason="ring").count() == 1
    # an honest chain d -> e -> f, each once, then f -> d: not a ring (steps below min_step)
    d, e, f = [await trusted_member() for _ in range(3)]
    assert (await accept(e, d)).granted > 0 and (await accept(f, e)).granted > 0
    assert await graph.find_cycle(RULES, f.id, d.id, datetime.now(timezone.utc)) is None
    assert (await accept(d, f)).granted > 0


# --- forwards --------------------------------------------------------------------------------------
async def share(client: Any, user: str) -> tuple[str, KnowledgeItem]:
    replies = await chat(client, user, text="我的流量还剩多少，怎么查？")
    fw = next(c["action"] for c in replies[0]["choices"] if c["action"].startswith("fw:"))
    shared = await chat(client, user, action=fw)
    return shared[0]["cards"][0]["url"].rsplit("/f/", 1)[1], await KnowledgeItem.get(id=int(fw.split(":")[1]))


async def test_forwards_count_members_and_devices_never_cookies_or_the_sharer(client, services) -> None:
    token, item = await share(client, "fw-sharer")
    sharer = await member_of("fw-sharer")
    # the sharer's own device, ten times with a cleared cookie jar: nothing
    for _ in range(10):
        client.session.cookie_jar.clear()
        assert (await tap_helped(client, token)).status == 200
    assert await points(sharer.id) == (0, 0)
    # the sharer's other account (a Telegram account of the same member) never pays either
    await ChannelAccount.create(member_id=sharer.id, channel="telegram", external_id="555")
    await services.pipeline.process(
        Incoming(channel="telegram", user="555", event="start", payload=f"fw_{token}", msg_id="own")
    )
    assert await points(sharer.id) == (0, 0)
    # a distinct trusted member pays at once; a new one pays pending
    friend = await ChannelAccount.create(member_id=(await trusted_member()).id, channel="telegram", external_id="556")
    await services.pipeline.process(
        Incoming(channel="telegram", user="556", event="start", payload=f"fw_{token}", msg_id="f1")
    )
    expected = RULES.forward_points(item.difficulty, True)
    assert await points(sharer.id) == (expected, 0)
    await services.pipeline.process(
        Incoming(channel="telegram", user="557", event="start", payload=f"fw_{token}", msg_id="f2")
    )
    assert (await points(sharer.id))[1] == expected
    # a trusted member's rating counts in credibility, a new member's does not
    await services.pipeline.process(Incoming(channel="telegram", user="556", action=f"fwr:{token}:1", msg_id="r1"))
    await services.pipeline.process(Incoming(channel="telegram", user="557", action=f"fwr:{token}:1", msg_id="r2"))
    weights = sorted(r.weight for r in await ForwardRating.filter(sharer_id=sharer.id))
    assert weights == [0.0, 1.0]
    assert friend.member_id != sharer.id
    # reaching many new people is what forwarding is for: not a farm
    for n in range(558, 563):
        await services.pipeline.process(
            Incoming(channel="telegram", user=str(n), event="start", payload=f"fw_{token}", msg_id=f"n{n}")
        )
    assert await ReviewFlag.filter(member_id=sharer.id).count() == 0
    assert (await points(sharer.id))[1] == min(RULES.hold_daily_cap, 6 * expected)


async def test_one_device_pays_once_per_item_even_as_fresh_members(client, gam) -> None:
    token, _item = await share(client, "dev-sharer")
    from gamification.models import ForwardLink

    link = await ForwardLink.get(token=token)
    first, second = await Member.create(), await Member.create()  # two fresh web sessions, one phone
    a = await gam.on_forward_engaged(
        link, f"m:{first.id}", recipient_member_id=first.id, fingerprint="dev-1", network="n"
    )
    b = await gam.on_forward_engaged(
        link, f"m:{second.id}", recipient_member_id=second.id, fingerprint="dev-1", network="n"
    )
    assert a.engagement is not None and a.engagement.paid is False  # the row as created
    assert b.reason == "same device" and b.points == 0
    sharer = await member_of("dev-sharer")
    assert await LedgerEntry.filter(member_id=sharer.id, event="forward_engaged").count() == 1


async def test_rating_puppets_do_not_make_a_sharer_credible(client, gam) -> None:
    token, _item = await share(client, "cred-sharer")
    sharer = await member_of("cred-sharer")
    for i in range(12):
        client.session.cookie_jar.clear()
        ua = {"User-Agent": f"puppet-browser-{i}"}
        assert (await tap_rating(client, token, True, ua)).status == 200
    assert await ForwardRating.filter(sharer_id=sharer.id).count() == 12
    summary = await gam.member_summary(sharer.id)
    assert summary["credibility"] == "unrated"
    balance, held = await points(sharer.id)
    assert balance == 0 and held <= RULES.per_network_daily_cap * RULES.forward_points(5, True)


# --- ZF ----------------------------------------------------------------------------------------------
async def test_zf_one_forward_a_day_per_number_per_sender_cap_and_friends(client, services) -> None:
    item = await KnowledgeItem.filter(status="published", sms_code__not_isnull=True).first()
    victim = "+8613900139999"
    for i in range(25):
        await chat(client, f"zf-puppet{i}", text=f"ZF {item.sms_code} 13900139999")
    rows = await OutboxMessage.filter(channel="sms", address=victim, purpose="forward")
    assert len(rows) == 1 and "第一" in rows[0].payload["text"] and "TD" in rows[0].payload["text"]
    refused = await chat(client, "zf-puppet99", text=f"ZF {item.sms_code} 13900139999")
    assert ("今天" in refused[0]["text"] or "today" in refused[0]["text"]) and await OutboxMessage.filter(
        address=victim
    ).count() == 1
    # per sender: a member sends at most zf.per_sender_daily a day, to distinct numbers
    sent = 0
    for n in range(RULES.zf_per_sender_daily + 2):
        reply = await chat(client, "zf-busy", text=f"ZF {item.sms_code} 1390013{8000 + n}")
        sent += "****" in reply[0]["text"]
    assert sent == RULES.zf_per_sender_daily
    assert await SmsForward.filter(sender_id=(await member_of("zf-busy")).id).count() == RULES.zf_per_sender_daily
    # a friend who engaged with this sender's forward may get one more from them today
    sender = await member_of("zf-puppet0")
    await services.pipeline.process(Incoming(channel="sms", user=victim, text="1", msg_id="victim-1"))
    other = (
        await KnowledgeItem.filter(status="published", sms_code__not_isnull=True)
        .exclude(sms_code=item.sms_code)
        .first()
    )
    again = await chat(client, "zf-puppet0", text=f"ZF {other.sms_code} 13900139999")
    assert "****" in again[0]["text"]
    rows = await OutboxMessage.filter(channel="sms", address=victim, purpose="forward").order_by("id")
    assert len(rows) == 2 and "第一" not in rows[1].payload["text"] and "TD" in rows[1].payload["text"]
    assert sender.id  # the one whose forward the friend engaged with
    # the same ZF again (a second press, a retry): no second SMS
    await chat(client, "zf-puppet0", text=f"ZF {other.sms_code} 13900139999")
    assert await OutboxMessage.filter(channel="sms", address=victim, purpose="forward").count() == 2
    # an opted-out number is refused
    await Member.filter(id=(await ChannelAccount.get(channel="sms", external_id=victim)).member_id).update(
        opted_out=True
    )
    out = await chat(client, "zf-late", text=f"ZF {item.sms_code} 13900139999")
    assert "退订" in out[0]["text"] or "opted out" in out[0]["text"]


# --- redemption ------------------------------------------------------------------------------------
async def test_redemption_needs_a_verified_phone_and_pays_only_to_it(client, gam) -> None:
    reward = await Reward.create(name="10元话费", kind="topup", cost=30, stock=5, per_member_limit=3, face_value=10)
    await chat(client, "spender", text="你好")
    m = await member_of("spender")
    # the balance is checked before anything is asked
    poor = await chat(client, "spender", action=f"rd:{reward.id}")
    assert "不够" in poor[0]["text"]
    await gam.award(m.id, "contribution_approved", "contribution:r1")
    await gam.award(m.id, "contribution_approved", "contribution:r2")
    # pending points cannot be spent
    await gam.on_answer_accepted(answer_id=9001, answerer_id=m.id, asker_id=(await Member.create()).id)
    assert (await ledger.balance_of(m.id)).held > 0
    unverified = await chat(client, "spender", action=f"rd:{reward.id}")
    assert "绑定手机" in unverified[0]["text"]
    assert await Redemption.filter(member_id=m.id).count() == 0
    await make_trusted(m, level=1, phone="+8613700137000")
    done = await chat(client, "spender", action=f"rd:{reward.id}")
    assert "137****7000" in done[0]["text"]
    order = await Redemption.get(member_id=m.id)
    assert order.phone == "+8613700137000"
    # a conversation left waiting for a typed number (before the upgrade): the typed number is ignored
    from bot.core.accounts import state_key

    services = client.app[SERVICES]
    await services.state.set(state_key(m.id), {"await": "redeem_phone", "redeem_reward": reward.id}, 600)
    typed = await chat(client, "spender", text="13900000001")
    assert "137****7000" in typed[0]["text"]
    assert not await Redemption.filter(phone="+8613900000001").exists()
    assert await Redemption.filter(member_id=m.id, phone="+8613700137000").count() == 2


# --- properties --------------------------------------------------------------------------------------
events = st.lists(st.tuples(st.sampled_from(["accept", "vote"]), st.integers(0, 5)), min_size=1, max_size=25)


@hsettings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=events, levels=st.lists(st.integers(0, 2), min_size=6, max_size=6))
async def test_no_sequence_of_events_pays_more_than_the_caps(
    sqlite_orm: None, seq: list[tuple[str, int]], levels: list[int]
) -> None:
    gam = standalone()
    earner = await Member.create()
    actors = []
    for lv in levels:
        m = await Member.create()
        actors.append(await make_trusted(m, level=lv) if lv else m)
    for n, (kind, who) in enumerate(seq):
        actor = actors[who]
        if kind == "accept":
            await gam.on_answer_accepted(answer_id=n, answerer_id=earner.id, asker_id=actor.id)
        else:
            await gam.on_answer_helpful(answer_id=n, answerer_id=earner.id, voter_id=actor.id)
    entries = await LedgerEntry.filter(member_id=earner.id)
    total = sum(e.granted + e.held for e in entries)
    assert total <= RULES.daily_cap
    pending_from_new = sum(e.held for e in entries if e.hold_until is not None)
    assert pending_from_new <= RULES.hold_daily_cap
    accepts = [e for e in entries if e.event == "answer_accepted" and e.granted + e.held > 0]
    assert len(accepts) <= RULES.events["answer_accepted"].daily_limit
    for actor, lv in zip(actors, levels):
        mine = [e for e in accepts if e.counterpart_id == actor.id]
        assert len(mine) <= RULES.events["answer_accepted"].pair_weekly_limit
        votes = [e for e in entries if e.event == "answer_helpful" and e.counterpart_id == actor.id]
        if lv == 0:
            assert votes == []  # weighs nothing
        if lv < RULES.trusted_level:
            assert all(e.granted == 0 for e in entries if e.counterpart_id == actor.id)  # never redeemable at once
    bal = await ledger.balance_of(earner.id)
    assert bal.balance == sum(e.granted for e in entries) and bal.held == sum(e.held for e in entries)


ledger_ops = st.lists(
    st.tuples(
        st.sampled_from(["award", "award_pending", "release", "reverse", "spend"]),
        st.integers(0, 9),
        st.integers(1, 40),
    ),
    min_size=1,
    max_size=30,
)


@hsettings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seq=ledger_ops)
async def test_ledger_pending_plus_redeemable_is_what_was_granted(
    sqlite_orm: None, seq: list[tuple[str, int, int]]
) -> None:
    m = await Member.create()
    ids: list[int] = []
    until = datetime.now(timezone.utc) + timedelta(days=7)

    async def pending_policy(conn: Any, delta: int) -> ledger.Grant:
        return ledger.Grant(0, held=delta, hold_until=until, note="pending")

    for op, k, amount in seq:
        try:
            if op == "award":
                ids.append((await ledger.award(m.id, "answer_helpful", amount, key=f"a{k}")).entry_id)
            elif op == "award_pending":
                ids.append(
                    (await ledger.award(m.id, "answer_helpful", amount, key=f"p{k}", policy=pending_policy)).entry_id
                )
            elif op == "release" and ids:
                await ledger.release(ids[k % len(ids)])
            elif op == "reverse" and ids:
                await ledger.reverse(ids[k % len(ids)], reason="fraud")
            elif op == "spend":
                await ledger.spend(m.id, amount, key=f"s{k}")
        except (ledger.NotReleasable, ledger.NotReversible, ledger.InsufficientPoints):
            pass
        bal = await ledger.balance_of(m.id)
        rows = await LedgerEntry.filter(member_id=m.id)
        assert bal.balance >= 0 and bal.held >= 0 and bal.debt >= 0
        # redeemable + pending (less what reversals found already spent) = everything granted
        assert bal.balance - bal.debt + bal.held == sum(e.granted + e.held for e in rows)
        assert bal.held == sum(e.held for e in rows)
        # an entry is released at most once and never after it was reversed
        for e in rows:
            if e.held > 0 and e.reversal_of_id is None and e.event != "release":
                released = [r for r in rows if r.idempotency_key == ledger.key_of("release", e.id)]
                reversed_ = [r for r in rows if r.reversal_of_id == e.id]
                assert len(released) <= 1 and len(reversed_) <= 1
                if released and reversed_:
                    assert reversed_[0].id > released[0].id and reversed_[0].held == 0
    total = (await LedgerEntry.filter(member_id=m.id).annotate(s=Sum("held")).values_list("s", flat=True))[0] or 0
    assert total == (await ledger.balance_of(m.id)).held


async def test_release_job_never_pays_what_waits_for_a_review(client, gam) -> None:
    """Held for a ring or farm (even if the process died before the review item was written),
    a suspended member, a member whose fraud was confirmed: the hold passing pays nothing."""
    later = datetime.now(timezone.utc) + timedelta(days=RULES.hold_days + 1)
    until = datetime.now(timezone.utc) + timedelta(days=RULES.hold_days)

    async def held(member: Member, note: str, key: str) -> None:
        async def policy(conn: Any, delta: int) -> ledger.Grant:
            return ledger.Grant(0, held=delta, hold_until=until, note=note)

        await ledger.award(member.id, "answer_accepted", 10, key=key, policy=policy)

    farmed, suspended, confirmed, honest = [await Member.create() for _ in range(4)]
    await held(farmed, "farm", "r:1")  # no review item: it was lost to a crash
    await held(suspended, "pending", "r:2")
    await Member.filter(id=suspended.id).update(status="suspended")
    await held(confirmed, "pending", "r:3")
    await ReviewFlag.create(member_id=confirmed.id, reason="farm", key="farm:x", status="confirmed")
    await held(honest, "pending", "r:4")
    assert await gam.release_due(later) == 10
    assert [await points(m.id) for m in (farmed, suspended, confirmed, honest)] == [(0, 10), (0, 10), (0, 10), (10, 0)]
    # staff clear the farmed member's (re-opened) review item: the review stands in for the hold
    flag = await ReviewFlag.create(member_id=farmed.id, reason="farm", key=f"farm:{farmed.id}")
    await ReviewFlag.filter(id=flag.id).update(status="cleared")
    assert await gam.release_held(farmed.id) == 10
    assert await points(farmed.id) == (10, 0)


@pytest.mark.services
async def test_pending_caps_farm_and_release_on_postgres(fresh_postgres_url: str) -> None:
    """The same rules on PostgreSQL, with awards racing each other under the row lock."""
    import asyncio

    await storage.open_db(fresh_postgres_url, create_schema=True)
    try:
        gam = standalone()
        helper = await Member.create()
        puppets = [await Member.create() for _ in range(12)]
        await asyncio.gather(
            *[gam.on_answer_accepted(answer_id=i, answerer_id=helper.id, asker_id=p.id) for i, p in enumerate(puppets)]
        )
        balance, held = await points(helper.id)
        assert balance == 0 and 0 < held <= RULES.hold_daily_cap
        assert await ReviewFlag.filter(reason="farm", member_id=helper.id).count() == 1
        later = datetime.now(timezone.utc) + timedelta(days=RULES.hold_days + 1)
        assert await gam.release_due(later) == 0  # under review
        await ReviewFlag.filter(member_id=helper.id).update(status="cleared")
        # cleared: what the review held is paid at once, the pending rest when its hold passes
        released = await gam.release_held(helper.id) + await gam.release_due(later)
        assert released == held and await points(helper.id) == (held, 0)
        rows = await LedgerEntry.filter(member_id=helper.id)
        assert sum(e.granted + e.held for e in rows) == held
    finally:
        await storage.close_db()


def test_bad_trust_rules_are_refused_clearly() -> None:
    for bad in (
        {"trust": {"levels": {1: {"name": "basic"}}}},  # no level 0
        {"trust": {"weights": {"answer_helpful": {0: -1}}}},
        {"trust": {"hold": {"days": -1}}},
        {"zf": {"per_destination_daily": 0}},
        {"events": {"answer_accepted": {"points": 20, "daily_limit": "many"}}},
    ):
        with pytest.raises(ValueError, match="invalid gamification rules"):
            parse_rules(bad)
    r = parse_rules({"trust": {"weights": {"vote": {1: 0.5, 3: 2.0}}}})
    assert [r.weight("vote", lv) for lv in range(5)] == [0.0, 0.5, 0.5, 2.0, 2.0]
    assert r.weight("unlisted", 0) == 1.0
