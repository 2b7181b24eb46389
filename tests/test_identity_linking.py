"""Linking channels through the real HTTP API and pipeline: a phone code sent by SMS (the
Twilio fake on loopback), a link code typed on another channel, chosen names, /api/v1/me."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from aiohttp.test_utils import TestClient

from bot.core.app_keys import SERVICES
from bot.core.messages import Incoming, Reply
from bot.core.identity.models import LinkCode, MemberMerge
from bot.core.models import ChannelAccount, Member, TranscriptEntry
from community.inbox import service as inbox
from community.inbox.models import Ticket
from gamification import ledger
from tests.community_helpers import chat, member_headers
from tests.fakes.twilio_api import FakeTwilio, wait_for
from tests.test_sms_twilio import PHONE, app_client, form, post_signed, sms_settings, twiml_messages


@pytest_asyncio.fixture
async def twilio() -> AsyncIterator[FakeTwilio]:
    fake = FakeTwilio()
    await fake.start()
    yield fake
    await fake.stop()


@pytest_asyncio.fixture
async def app(tmp_path: Path, twilio: FakeTwilio) -> AsyncIterator[TestClient]:
    c = await app_client(sms_settings(tmp_path, twilio))
    yield c
    await c.close()


async def sms_say(c: TestClient, text: str, sid: str) -> str:
    resp = await post_signed(c, "/sms/inbound", form(text, sid=sid))
    assert resp.status == 200
    return "\n".join(twiml_messages(await resp.text()))


async def sms_code(twilio: FakeTwilio, n: int) -> str:
    await wait_for(lambda: len(twilio.sent) >= n)
    sent = twilio.sent[n - 1]
    assert sent.form["To"] == PHONE
    m = re.search(r"\b(\d{6})\b", sent.form["Body"])
    assert m, sent.form["Body"]
    return m.group(1)


async def member_of(channel: str, external_id: str) -> Member:
    return (await ChannelAccount.get(channel=channel, external_id=external_id).select_related("member")).member


async def test_phone_code_links_web_to_the_sms_member_with_points_tickets_and_transcript(
    app: TestClient,
    twilio: FakeTwilio,
) -> None:
    services = app.app[SERVICES]
    await sms_say(app, "你好", "SM1")  # the phone's member, known from SMS
    phone_member = await member_of("sms", PHONE)
    await ledger.award(phone_member.id, "answer_helpful", 30, key="t:sms")
    await chat(app, "alice", text="你好")
    web_member = await member_of("web", "alice")
    await ledger.award(web_member.id, "answer_helpful", 12, key="t:web")
    ticket, _ = await inbox.open_ticket(services, web_member.id, "web", "human", summary="网速慢")

    replies = await chat(app, "alice", text="绑定手机 13800138000")
    assert "13800138000" in replies[0]["text"] or PHONE in replies[0]["text"]
    code = await sms_code(twilio, 1)
    assert await LinkCode.filter(code_hash=code).count() == 0  # stored hashed only
    wrong = "000000" if code != "000000" else "111111"
    assert "不正确" in (await chat(app, "alice", text=f"绑定 {wrong}"))[0]["text"]
    asked = await chat(app, "alice", text=f"绑定 {code}")  # nothing moves before alice confirms
    assert [c["action"] for c in asked[0]["choices"]] == ["lnk:ok", "lnk:no"]
    assert not await MemberMerge.exists()
    linked = await chat(app, "alice", action="lnk:ok")
    assert "积分" in linked[0]["text"] or "Linked" in linked[0]["text"]

    # one member now: channels, points, ticket, transcript, verified phone
    assert (await member_of("web", "alice")).id == phone_member.id
    merged = await Member.get(id=phone_member.id)
    assert merged.phone == PHONE and merged.phone_verified_at is not None
    assert (await ledger.balance_of(phone_member.id)).balance == 42
    assert (await ledger.balance_of(web_member.id)).balance == 0
    assert (await Ticket.get(id=ticket.id)).member_id == phone_member.id
    assert (await Ticket.get(id=ticket.id)).open_key == phone_member.id
    channels = set(await TranscriptEntry.filter(member_id=phone_member.id).values_list("channel", flat=True))
    assert channels == {"sms", "web"}
    record = await MemberMerge.get(source_id=web_member.id)
    assert record.target_id == phone_member.id and record.via == "phone" and record.status == "merged"
    # the code is spent: typing it again does nothing more
    again = await chat(app, "alice", text=f"绑定 {code}")
    assert await MemberMerge.all().count() == 1 and again[0]["kind"] == "link"

    # an agent's message goes to the member's channel: alice's web chat was used last
    out = await services.outbox.to_member(phone_member.id, Reply(text="已处理"), purpose="agent")
    assert out is not None and out.channel == "web"
    me = await app.get("/api/v1/me", headers=member_headers("alice"))
    body = await me.json()
    assert me.status == 200 and body["member"]["id"] == phone_member.id
    assert body["member"]["verified_phone"] is True and body["points"]["balance"] == 42
    assert {c["channel"] for c in body["member"]["channels"]} == {"sms", "web"}
    assert body["member"]["display_name"] == "138****8000"


async def test_phone_codes_are_rate_limited_and_attempts_capped(app: TestClient, twilio: FakeTwilio) -> None:
    await chat(app, "bob", text="bind phone 13800138000")
    code = await sms_code(twilio, 1)
    again = await chat(app, "bob", text="bind phone 13800138000")
    assert "Too many" in again[0]["text"] and len(twilio.sent) == 1  # no second SMS within the minute
    wrong = "000000" if code != "000000" else "111111"
    for _ in range(5):
        await chat(app, "bob", text=f"bind {wrong}")
    late = await chat(app, "bob", text=f"bind {code}")  # five wrong tries killed it
    assert "wrong" in late[0]["text"] and not await MemberMerge.exists()  # bob wrote English first: English throughout
    bob = await member_of("web", "bob")
    assert (await Member.get(id=bob.id)).phone is None
    # another member cannot use bob's code at all
    await chat(app, "mallory", text=f"bind {code}")
    assert (await member_of("web", "mallory")).phone is None
    assert (await app.post("/api/v1/chat", json={"user": "bob", "text": "bind 123456"})).status == 401


async def test_link_code_typed_on_another_channel_makes_one_member(app: TestClient) -> None:
    await sms_say(app, "你好", "SM1")
    shown = await sms_say(app, "绑定", "SM2")
    code = re.search(r"\b([A-Z2-9]{8})\b", shown)
    assert code, shown
    sms_member = await member_of("sms", PHONE)
    await chat(app, "carol", text="你好")
    carol = await member_of("web", "carol")
    await chat(app, "carol", text=f"绑定 {code.group(1)}")
    linked = await chat(app, "carol", action="lnk:ok")
    assert linked[0]["kind"] == "link"
    assert (await member_of("web", "carol")).id == (await member_of("sms", PHONE)).id
    assert {carol.id, sms_member.id} >= {(await member_of("web", "carol")).id}
    # the code worked once
    await chat(app, "dave", text=f"绑定 {code.group(1)}")
    assert (await member_of("web", "dave")).id not in (carol.id, sms_member.id)
    assert await MemberMerge.all().count() == 1


async def test_chosen_name_is_validated_and_shown(app: TestClient) -> None:
    await chat(app, "erin", text="你好")
    bad = await chat(app, "erin", text="改名 " + "长" * 17)
    assert bad[0]["kind"] == "name"
    assert (await member_of("web", "erin")).nickname == ""
    await chat(app, "erin", text="改名 http://evil.example")
    assert (await member_of("web", "erin")).nickname == ""
    question = await chat(app, "erin", text="name on my bill is wrong?")  # a question, not a rename
    assert question[0]["kind"] != "name" and (await member_of("web", "erin")).nickname == ""
    other = await chat(app, "erin", text="绑定 其他号码")  # asks the knowledge base
    assert other[0]["kind"] != "link" and not await LinkCode.exists()
    ok = await chat(app, "erin", text="改名 小E")
    assert "小E" in ok[0]["text"]
    me = await (await app.get("/api/v1/me", headers=member_headers("erin"))).json()
    assert me["member"]["display_name"] == "小E" and me["member"]["verified_phone"] is False
    nobody = await chat(app, "frank", text="你好")
    assert nobody
    me = await (await app.get("/api/v1/me", headers=member_headers("frank"))).json()
    frank = await member_of("web", "frank")
    assert me["member"]["display_name"] == f"会员{frank.id:04d}"


async def test_me_needs_a_session(app: TestClient) -> None:
    r = await app.get("/api/v1/me")
    assert r.status == 401 and "error" in await r.json()
    r = await app.get("/api/v1/me", params={"user": "erin"})
    assert r.status == 401
    await app.post("/api/v1/chat", json={"text": "你好"})  # a session cookie now
    r = await app.get("/api/v1/me")
    body = await r.json()
    assert r.status == 200 and body["member"]["channels"][0]["channel"] == "web"
    assert body["points"] == {"balance": 0, "pending": 0} and body["badges"] == []


async def test_names_on_the_leaderboard_chat_board_and_inbox(app: TestClient) -> None:
    from gamification.service import GAMIFICATION
    from tests.community_helpers import staff_login

    await chat(app, "gina", text="改名 Gina<b>")
    await chat(app, "hank", text="你好")
    gina, hank = await member_of("web", "gina"), await member_of("web", "hank")
    gamification = app.app[GAMIFICATION]
    await gamification.award(gina.id, "answer_accepted", "t:1")
    await gamification.award(hank.id, "answer_accepted", "t:2")
    page = await (await app.get("/leaderboard")).text()
    assert "Gina&lt;b&gt;" in page and f"会员{hank.id:04d}" in page and f"#{hank.id}" not in page
    board = await chat(app, "hank", text="排行")
    assert "Gina<b>" in board[0]["text"] and f"会员{hank.id:04d}" in board[0]["text"]
    from community.qa.models import Question

    await chat(app, "hank", text="/ask 国际漫游怎么开通比较划算")
    q = await Question.get(text="国际漫游怎么开通比较划算")
    await chat(app, "gina", action=f"ans:{q.code}")
    await chat(app, "gina", text="在App里开通漫游包最划算")
    page = await (await app.get(f"/questions/{q.code}")).text()
    assert "在App里开通漫游包最划算" in page and "Gina&lt;b&gt;" in page  # the helper's name, escaped
    await chat(app, "hank", text="人工")
    await staff_login(app, "ivy", ["agent"])
    queue = await (await app.get("/inbox")).text()
    assert f"会员{hank.id:04d}" in queue and f"用户 {hank.id}" not in queue


async def test_agents_merge_and_unmerge_from_the_inbox(app: TestClient) -> None:
    from tests.community_helpers import csrf, staff_login

    services = app.app[SERVICES]
    await sms_say(app, "你好", "SM1")
    await chat(app, "jo", text="你好")
    await chat(app, "jo", text="人工")
    sms_m, web_m = await member_of("sms", PHONE), await member_of("web", "jo")
    await ledger.award(sms_m.id, "answer_helpful", 7, key="t:s")
    await ledger.award(web_m.id, "answer_helpful", 5, key="t:w")
    ticket = await Ticket.get(member_id=web_m.id)

    anon = await app.post("/inbox/members/merge", data={"source": web_m.id, "target": sms_m.id}, allow_redirects=False)
    assert anon.status == 401 and not await MemberMerge.exists()
    await staff_login(app, "rita", ["reviewer"])
    assert (await app.get("/inbox/members/merge")).status == 403
    await app.post("/logout", data={})
    app.session.cookie_jar.clear()
    await staff_login(app, "amy", ["agent"])
    html, token = await csrf(app, f"/inbox/members/merge?source={web_m.id}&target={sms_m.id}")
    assert "sms" in html and "web" in html
    no_csrf = await app.post(
        "/inbox/members/merge", data={"source": web_m.id, "target": sms_m.id}, allow_redirects=False
    )
    assert no_csrf.status == 403 and not await MemberMerge.exists()

    for _ in range(2):  # a double submit merges once
        r = await app.post(
            "/inbox/members/merge",
            data={"csrf_token": token, "source": web_m.id, "target": sms_m.id},
            allow_redirects=False,
        )
        assert r.status == 303 and "flash=merged" in r.headers["Location"]
    record = await MemberMerge.get(source_id=web_m.id)
    assert record.actor == "staff:amy" and await MemberMerge.all().count() == 1
    board = await (await app.get("/leaderboard?period=all")).text()
    assert f"会员{sms_m.id:04d}" in board and f"会员{web_m.id:04d}" not in board  # merged away: off the board
    assert (await ledger.balance_of(sms_m.id)).balance == 12
    assert (await Ticket.get(id=ticket.id)).member_id == sms_m.id
    page = await (await app.get(f"/inbox/t/{ticket.id}")).text()
    assert "你好" in page and "短信" in page  # one history across channels (the SMS lines named for the agent)
    # after the merge the member's messages go to the channel they used last: web
    await chat(app, "jo", text="还在吗")
    out = await services.outbox.to_member(sms_m.id, Reply(text="x"), purpose="agent")
    assert out is not None and out.channel == "web"

    r = await app.post(f"/inbox/members/merges/{record.id}/unmerge", data={"csrf_token": token}, allow_redirects=False)
    assert r.status == 303 and "flash=unmerged" in r.headers["Location"]
    assert (await member_of("web", "jo")).id == web_m.id
    assert (await ledger.balance_of(web_m.id)).balance == 5 and (await ledger.balance_of(sms_m.id)).balance == 7
    assert (await Ticket.get(id=ticket.id)).member_id == web_m.id
    assert (await MemberMerge.get(id=record.id)).undone_by == "staff:amy"


async def test_to_member_prefers_the_channel_last_used_on_postgresql(fresh_postgres_url: str) -> None:
    """A linked account that never wrote must not win on PostgreSQL (NULLs first in DESC)."""
    from datetime import datetime, timezone

    from bot.core import storage
    from bot.core.messages import Reply
    from bot.core.outbox import Outbox
    from tests.conftest import make_settings

    await storage.open_db(fresh_postgres_url, create_schema=True)
    try:
        m = await Member.create()
        await ChannelAccount.create(member=m, channel="sms", external_id=PHONE)  # linked, never wrote
        await ChannelAccount.create(
            member=m, channel="web", external_id="used", last_inbound_at=datetime.now(timezone.utc)
        )
        out = await Outbox(make_settings(Path("/tmp"))).to_member(m.id, Reply(text="x"), purpose="agent")
        assert out is not None and out.channel == "web"
    finally:
        await storage.close_db()


async def test_a_verified_phone_brings_its_sms_account_to_the_member(app: TestClient, twilio: FakeTwilio) -> None:
    await chat(app, "kim", text="bind phone 13800138000")
    code = await sms_code(twilio, 1)
    verified = await chat(app, "kim", text=f"bind {code}")
    assert PHONE in verified[0]["text"]
    kim = await member_of("web", "kim")
    assert (await member_of("sms", PHONE)).id == kim.id
    await sms_say(app, "积分", "SM9")  # a text from that number is kim writing
    assert await TranscriptEntry.filter(member_id=kim.id, channel="sms", direction="in").count() == 1
    assert await Member.all().count() == 1


async def test_a_code_someone_else_gives_you_takes_nothing_without_your_yes(app: TestClient) -> None:
    """Social engineering: 'type bind XXXX for 100 points'. The victim's account stays theirs
    unless they confirm joining the other account, and a group chat never shows or takes codes."""
    await chat(app, "mallet", text="你好")
    shown = await chat(app, "mallet", text="绑定")
    code = re.search(r"[A-Z0-9]{8}", shown[0]["text"])
    assert code
    await chat(app, "victim", text="你好")
    asked = await chat(app, "victim", text=f"绑定 {code.group(0)}")
    assert "合并" in asked[0]["text"] and not await MemberMerge.exists()
    await chat(app, "victim", action="lnk:no")
    assert not await MemberMerge.exists()
    assert (await chat(app, "victim", action="lnk:ok"))[0]["text"] == "没有绑定任何账户。"  # nothing pending any more
    services = app.app[SERVICES]
    [group] = await services.pipeline.process(
        Incoming(channel="telegram", user="555", chat="-100", text="/bind", msg_id="g1", meta={"group": True})
    )
    assert "私聊" in group.text and "bind" not in group.text.lower()
