"""Tickets: one live ticket per member, queue order, claims under concurrency, replies,
closing with one survey, and the inbox pages' access rules."""

from __future__ import annotations

import asyncio
import re
from datetime import datetime, timedelta, timezone

from bot.core.app_keys import SERVICES
from bot.core.models import Member, OutboxMessage
from bot.core.accounts import get_or_create_account
from bot.staff.auth import create_staff
from community.inbox import service as inbox
from community.inbox.models import Ticket, TicketMessage
from community.models import KnowledgeItem
from tests.community_helpers import chat, csrf, staff_login, wait_sent


async def member(external: str, **fields) -> Member:  # type: ignore[no-untyped-def]
    account = await get_or_create_account("web", external)
    if fields:
        await Member.filter(id=account.member_id).update(**fields)
    return await Member.get(id=account.member_id)


async def test_concurrent_opens_make_one_ticket(services) -> None:
    m = await member("c1")
    results = await asyncio.gather(
        *[inbox.open_ticket(services, m.id, "web", "human", summary=f"s{i}") for i in range(10)]
    )
    assert len({t.id for t, _ in results}) == 1
    assert sum(created for _, created in results) == 1
    assert await Ticket.filter(member_id=m.id).count() == 1


async def test_queue_puts_urgent_first_then_fifo(services) -> None:
    plain1 = (await inbox.open_ticket(services, (await member("q1")).id, "web", "human"))[0]
    plain2 = (await inbox.open_ticket(services, (await member("q2")).id, "web", "human"))[0]
    vip = (await inbox.open_ticket(services, (await member("q3", tags=["VIP"])).id, "web", "human"))[0]
    complaint = (await inbox.open_ticket(services, (await member("q4")).id, "web", "complaint"))[0]
    # a ticket past its first-response SLA counts as urgent
    await Ticket.filter(id=plain2.id).update(first_response_due=datetime.now(timezone.utc) - timedelta(minutes=1))
    order = [t.id for t in await inbox.queue()]
    assert order == [plain2.id, vip.id, complaint.id, plain1.id]
    assert (await Ticket.get(id=vip.id)).urgent_why == ["vip"]


async def test_repeat_contact_is_urgent(services) -> None:
    m = await member("r1")
    t1, _ = await inbox.open_ticket(services, m.id, "web", "human")
    assert not t1.urgent
    staff = await create_staff("closer", "secret-pass-1", ["agent"])
    assert await inbox.close(services, t1.id, staff.id)
    t2, created = await inbox.open_ticket(services, m.id, "web", "human")
    assert created and t2.urgent and t2.urgent_why == ["repeat"]
    assert await inbox.contact_counts(m.id) == (2, 2)


async def test_concurrent_claims_have_one_winner(services) -> None:
    m = await member("k1")
    t, _ = await inbox.open_ticket(services, m.id, "web", "human")
    agents = [await create_staff(f"ag{i}", "secret-pass-1", ["agent"]) for i in range(4)]
    wins = await asyncio.gather(*[inbox.claim(services, t.id, a.id) for a in agents])
    assert sum(wins) == 1
    owner = agents[wins.index(True)]
    assert (await Ticket.get(id=t.id)).assignee_id == owner.id
    other = next(a for a in agents if a.id != owner.id)
    assert not await inbox.assign(services, t.id, other.id, expected_assignee=other.id)  # stale view
    assert await inbox.assign(services, t.id, other.id, expected_assignee=owner.id)
    fresh = await Ticket.get(id=t.id)
    try:
        await inbox.agent_reply(services, fresh, owner.id, "hi", "nonce-123456")
    except inbox.ReplyRefused:
        pass
    else:
        raise AssertionError("the previous owner may not reply")
    assert not await TicketMessage.filter(ticket_id=t.id, author="agent").exists()


async def test_close_sends_one_survey_and_stores_one_answer(services) -> None:
    m = await member("s1")
    t, _ = await inbox.open_ticket(services, m.id, "web", "human")
    staff = await create_staff("sam", "secret-pass-1", ["agent"])
    await inbox.claim(services, t.id, staff.id)
    closes = await asyncio.gather(*[inbox.close(services, t.id, staff.id) for _ in range(5)])
    assert sum(closes) == 1
    assert await OutboxMessage.filter(purpose="survey", member_id=m.id).count() == 1
    assert await inbox.record_survey(services, m.id, 9) is None
    scores = await asyncio.gather(*[inbox.record_survey(services, m.id, s) for s in (3, 5)])
    assert sum(1 for s in scores if s is not None) == 1
    assert (await Ticket.get(id=t.id)).survey_score in (3, 5)


async def test_survey_button_and_numbered_reply(client) -> None:
    services = client.app[SERVICES]
    await chat(client, "s2", text="人工")
    t = await Ticket.get(member__accounts__external_id="s2")
    staff = await create_staff("sue", "secret-pass-1", ["agent"])
    await inbox.close(services, t.id, staff.id)
    survey = await wait_sent(channel="web", address="s2", purpose="survey")
    assert [c["action"] for c in survey.payload["choices"]] == [f"sv:{t.id}:{n}" for n in range(1, 6)]
    reply = await chat(client, "s2", action=f"sv:{t.id}:2")
    assert reply[0]["kind"] == "survey_answer"
    assert (await Ticket.get(id=t.id)).survey_score == 2
    assert (
        "already" in (await chat(client, "s2", action=f"sv:{t.id}:5"))[0]["text"]
        or (await Ticket.get(id=t.id)).survey_score == 2
    )


async def test_inbox_needs_login_role_and_csrf(client) -> None:
    resp = await client.get("/inbox", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"].startswith("/login")
    await chat(client, "x1", text="人工")
    t = await Ticket.get(member__accounts__external_id="x1")
    await staff_login(client, "mark", ["marketer"])
    assert (await client.get("/inbox", allow_redirects=False)).status == 403
    await staff_login(client, "alan", ["agent"])
    html, token = await csrf(client, "/inbox")
    refused = await client.post(f"/inbox/t/{t.id}/claim", data={})
    assert refused.status == 403 and (await Ticket.get(id=t.id)).status == "open"
    wrong = await client.post(f"/inbox/t/{t.id}/claim", data={"csrf_token": "forged"})
    assert wrong.status == 403
    staff2 = await create_staff("other", "secret-pass-1", ["agent"])
    assign = await client.post(f"/inbox/t/{t.id}/assign", data={"csrf_token": token, "staff_id": str(staff2.id)})
    assert assign.status == 403  # admins assign
    assert (await client.get("/inbox/t/999999")).status == 404
    empty = await client.post(f"/inbox/t/{t.id}/reply", data={"csrf_token": token, "nonce": "n" * 16, "text": " "})
    assert empty.status == 400


async def test_member_text_is_escaped_and_publish_makes_a_draft(client) -> None:
    await chat(client, "x2", text="人工")
    await chat(client, "x2", text='<script>alert("x")</script> 我的宽带坏了')
    t = await Ticket.get(member__accounts__external_id="x2")
    await staff_login(client, "eve", ["agent"])
    html, token = await csrf(client, f"/inbox/t/{t.id}")
    assert '<script>alert("x")</script>' not in html
    assert html.count("&lt;script&gt;alert(") >= 2  # on the ticket and in the transcript
    await client.post(f"/inbox/t/{t.id}/claim", data={"csrf_token": token})
    html, token = await csrf(client, f"/inbox/t/{t.id}")
    nonce = re.search(r'name="nonce" value="([^"]+)"', html).group(1)
    await client.post(
        f"/inbox/t/{t.id}/reply", data={"csrf_token": token, "nonce": nonce, "text": "请重启光猫，再拨打 10000 报修。"}
    )
    msg = await TicketMessage.get(ticket_id=t.id, author="agent")
    for _ in range(2):
        resp = await client.post(
            f"/inbox/t/{t.id}/publish", data={"csrf_token": token, "message_id": str(msg.id)}, allow_redirects=False
        )
        assert resp.status == 303
    drafts = await KnowledgeItem.filter(key=f"agent-reply-{msg.id}")
    assert len(drafts) == 1 and drafts[0].status == "draft" and "光猫" in drafts[0].answer


async def test_sse_stream_reports_ticket_events(client) -> None:
    await staff_login(client, "liv", ["agent"])
    resp = await client.get("/inbox/events")
    assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/event-stream")
    assert b": connected" in await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 5)
    await chat(client, "x3", text="人工")
    line = await asyncio.wait_for(resp.content.readuntil(b"\n\n"), 5)
    assert line.startswith(b"data: ") and b'"opened"' in line
    resp.close()
