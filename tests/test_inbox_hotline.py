"""Hand-off to the phone hotline (转热线) and the supervisor role: the service, the HTTP
routes (once, CSRF, owner only, audited), the dashboard counting hand-offs, and who may
assign tickets and read the per-agent report."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

import pytest

from bot.core.models import ChannelAccount, Member, OutboxMessage, TranscriptEntry
from bot.dashboard import data as dashboard_data
from bot.dashboard import kpis
from bot.core.accounts import get_or_create_account
from bot.staff.auth import create_staff
from bot.staff.models import ROLES, StaffAudit, StaffUser
from community.inbox import service as inbox
from community.inbox.models import Ticket, TicketMessage
from tests.community_helpers import chat, csrf, staff_login, wait_sent

PHONE = "+8613800135678"


async def member(external: str, **fields) -> Member:  # type: ignore[no-untyped-def]
    account = await get_or_create_account("web", external)
    if fields:
        await Member.filter(id=account.member_id).update(**fields)
    return await Member.get(id=account.member_id)


# --- service -----------------------------------------------------------------------------------


async def test_hand_off_once_to_the_verified_phone_in_the_members_language(services) -> None:
    m = await member("h1", locale="zh_CN", phone=PHONE, phone_verified_at=datetime.now(timezone.utc))
    t, _ = await inbox.open_ticket(services, m.id, "web", "human", summary="宽带一直断")
    agent = await create_staff("hl-agent", "secret-pass-1", ["agent"])
    results = await asyncio.gather(
        *[
            inbox.hand_off_to_hotline(services, await Ticket.get(id=t.id), agent.id, note="家里没人接电话时请发短信")
            for _ in range(4)
        ]
    )
    assert sum(r.done for r in results) == 1  # concurrent posts: one hand-off
    fresh = await Ticket.get(id=t.id)
    assert fresh.hotline_at is not None and fresh.hotline_phone == PHONE
    assert fresh.hotline_note == "家里没人接电话时请发短信"
    assert fresh.assignee_id == agent.id and fresh.status == "claimed"  # the unassigned ticket was claimed
    assert fresh.first_response_at is not None  # telling the member is a response
    sent = await OutboxMessage.filter(member_id=m.id, idempotency_key=f"hotline:{t.id}")
    assert len(sent) == 1 and sent[0].purpose == "agent"  # solicited: an opt-out does not stop it
    text = sent[0].payload["text"]
    assert "热线" in text and "138****5678" in text and PHONE not in text and "13800135678" not in text
    notes = await TicketMessage.filter(ticket_id=t.id, nonce=f"hotline:{t.id}")
    assert len(notes) == 1 and notes[0].author == "system" and notes[0].staff_id == agent.id
    assert notes[0].outbox_id == sent[0].id and notes[0].text == text
    lines = await TranscriptEntry.filter(member_id=m.id, kind="hotline")
    assert len(lines) == 1 and lines[0].direction == "out" and lines[0].text == text
    again = await inbox.hand_off_to_hotline(services, fresh, agent.id, phone="010-12345678")
    assert not again.done and again.phone == PHONE  # a second hand-off changes nothing
    assert (await Ticket.get(id=t.id)).hotline_phone == PHONE
    assert await OutboxMessage.filter(member_id=m.id, purpose="agent").count() == 1


async def test_typed_number_english_member_and_refusals(services) -> None:
    m = await member("h2", locale="en")
    t, _ = await inbox.open_ticket(services, m.id, "web", "human")
    owner = await create_staff("hl-owner", "secret-pass-1", ["agent"])
    other = await create_staff("hl-other", "secret-pass-1", ["agent"])
    boss = await create_staff("hl-boss", "secret-pass-1", ["supervisor"])
    assert await inbox.claim(services, t.id, owner.id)
    with pytest.raises(inbox.HandOffRefused):  # another agent's ticket
        await inbox.hand_off_to_hotline(services, await Ticket.get(id=t.id), other.id)
    with pytest.raises(inbox.BadPhone):  # checked before anything changes
        await inbox.hand_off_to_hotline(services, await Ticket.get(id=t.id), owner.id, phone="call me maybe")
    assert (await Ticket.get(id=t.id)).hotline_at is None
    assert not await OutboxMessage.filter(member_id=m.id).exists()
    # a supervisor may act on another agent's ticket; the owner stays the owner
    done = await inbox.hand_off_to_hotline(
        services, await Ticket.get(id=t.id), boss.id, phone=" +86 138-0013-5678 ", any_ticket=True
    )
    assert done.done and done.phone == "+8613800135678"
    fresh = await Ticket.get(id=t.id)
    assert fresh.assignee_id == owner.id and fresh.hotline_phone == "+8613800135678"
    row = await OutboxMessage.get(member_id=m.id)
    assert row.payload["text"] == "Your request has been passed to our hotline. An agent will call you at 138****5678."
    # no phone at all: the member is told the hotline will call back, no number made up
    m3 = await member("h3", locale="en")
    t3, _ = await inbox.open_ticket(services, m3.id, "web", "human")
    r3 = await inbox.hand_off_to_hotline(services, t3, owner.id)
    assert r3.done and r3.phone is None
    assert (await OutboxMessage.get(member_id=m3.id)).payload[
        "text"
    ] == "Your request has been passed to our hotline. An agent will call you back."
    # a zh_TW member reads it in Traditional script
    m7 = await member("h7", locale="zh_TW")
    t7, _ = await inbox.open_ticket(services, m7.id, "web", "human")
    assert (await inbox.hand_off_to_hotline(services, t7, owner.id, phone="13800135678")).done
    assert (await OutboxMessage.get(member_id=m7.id)).payload[
        "text"
    ] == "您的問題已轉到熱線，客服將致電 138****5678 與您聯絡。"
    # a closed ticket is not handed off
    m4 = await member("h4")
    t4, _ = await inbox.open_ticket(services, m4.id, "web", "human")
    assert await inbox.close(services, t4.id, owner.id)
    with pytest.raises(inbox.HandOffRefused):
        await inbox.hand_off_to_hotline(services, await Ticket.get(id=t4.id), owner.id)


async def test_unreachable_member_is_still_handed_off(services) -> None:
    m = await member("h5")
    t, _ = await inbox.open_ticket(services, m.id, "web", "human")
    await ChannelAccount.filter(member_id=m.id).update(active=False)
    agent = await create_staff("hl-agent5", "secret-pass-1", ["agent"])
    result = await inbox.hand_off_to_hotline(services, t, agent.id, phone="13800135678")
    assert result.done and not result.delivered
    assert (await Ticket.get(id=t.id)).hotline_at is not None
    note = await TicketMessage.get(ticket_id=t.id, nonce=f"hotline:{t.id}")
    assert note.outbox_id is None
    assert not await OutboxMessage.filter(member_id=m.id).exists()


async def test_a_dropped_request_still_finishes_the_hand_off(services) -> None:
    """aiohttp cancels a handler whose client went away (a page reloading mid-post): the
    hand-off, once recorded, must still tell the member."""
    m = await member("h6")
    t, _ = await inbox.open_ticket(services, m.id, "web", "human")
    agent = await create_staff("hl-agent6", "secret-pass-1", ["agent"])
    task = asyncio.create_task(inbox.hand_off_to_hotline(services, t, agent.id, phone="13800135678"))
    for _ in range(500):
        if await Ticket.filter(id=t.id, hotline_at__not_isnull=True).exists():
            break
        await asyncio.sleep(0)
    task.cancel()
    for _ in range(200):
        if await TicketMessage.filter(ticket_id=t.id, outbox_id__not_isnull=True).exists():
            break
        await asyncio.sleep(0.01)
    assert (await Ticket.get(id=t.id)).hotline_at is not None
    assert await OutboxMessage.filter(member_id=m.id, idempotency_key=f"hotline:{t.id}").count() == 1
    assert await TranscriptEntry.filter(member_id=m.id, kind="hotline").count() == 1


# --- HTTP --------------------------------------------------------------------------------------


async def test_hotline_form_once_audited_csrf_and_owner_only(client) -> None:
    await chat(client, "hx1", text="人工")
    t = await Ticket.get(member__accounts__external_id="hx1")
    await Member.filter(id=t.member_id).update(phone=PHONE, phone_verified_at=datetime.now(timezone.utc))
    owner = await create_staff("hx-owner", "secret-pass-1", ["agent"])
    assert await inbox.claim(_services(client), t.id, owner.id)
    # another agent: refused, nothing recorded
    await staff_login(client, "hx-other", ["agent"])
    html, token = await csrf(client, f"/inbox/t/{t.id}")
    assert 'id="hotline-form"' not in html  # not offered on someone else's ticket
    resp = await client.post(f"/inbox/t/{t.id}/hotline", data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 303 and resp.headers["Location"].endswith("flash=refused")
    assert (await Ticket.get(id=t.id)).hotline_at is None
    # the owner: CSRF enforced, then two posts of the form make one hand-off
    await staff_login(client, "hx-owner", ["agent"])
    html, token = await csrf(client, f"/inbox/t/{t.id}")
    assert 'id="hotline-form"' in html and 'placeholder="138****5678"' in html and PHONE not in html
    forged = await client.post(f"/inbox/t/{t.id}/hotline", data={"csrf_token": "forged"}, allow_redirects=False)
    missing = await client.post(f"/inbox/t/{t.id}/hotline", data={}, allow_redirects=False)
    assert forged.status == 403 and missing.status == 403
    assert (await Ticket.get(id=t.id)).hotline_at is None
    bad = await client.post(
        f"/inbox/t/{t.id}/hotline", data={"csrf_token": token, "phone": "<b>x</b>"}, allow_redirects=False
    )
    assert bad.status == 400 and (await Ticket.get(id=t.id)).hotline_at is None
    form = {"csrf_token": token, "phone": "", "note": "客户要求晚上 8 点后回电"}
    first = await client.post(f"/inbox/t/{t.id}/hotline", data=form, allow_redirects=False)
    second = await client.post(f"/inbox/t/{t.id}/hotline", data=form, allow_redirects=False)
    assert first.headers["Location"].endswith("flash=hotline")
    assert second.headers["Location"].endswith("flash=already-hotline")
    sent = await wait_sent(channel="web", address="hx1", idempotency_key=f"hotline:{t.id}")
    assert "您的问题已转到热线" in sent.payload["text"] and "138****5678" in sent.payload["text"]
    assert await OutboxMessage.filter(member_id=t.member_id, idempotency_key__startswith="hotline:").count() == 1
    audits = await StaffAudit.filter(action="ticket.hotline", target_id=str(t.id))
    assert len(audits) == 1 and audits[0].staff_id == owner.id and audits[0].detail["phone"] == "138****5678"
    ticket = await Ticket.get(id=t.id)
    assert ticket.hotline_phone == PHONE and ticket.hotline_note == "客户要求晚上 8 点后回电"
    # the state on the ticket page (conversation and transcript) and in the queue
    page = await (await client.get(f"/inbox/t/{t.id}?lang=zh_CN")).text()
    assert 'id="hotline-state"' in page and "转热线" in page and "回拨号码：138****5678" in page
    assert 'id="hotline-form"' not in page and "客户要求晚上 8 点后回电" in page
    assert page.count('class="msg system hotline"') == 1 and '<li class="out hotline">' in page
    rows = await (await client.get("/inbox/queue?status=live&lang=zh_CN")).text()
    row = rows.split(f'data-ticket="{t.id}"', 1)[1].split("</tr>", 1)[0]
    assert "badge hotline" in row and "转热线" in row
    en = await (await client.get(f"/inbox/t/{t.id}?lang=en")).text()
    assert "Handed off to hotline" in en and "Call back: 138****5678" in en


def _services(client):  # type: ignore[no-untyped-def]
    from bot.core.app_keys import SERVICES

    return client.app[SERVICES]


# --- supervisor --------------------------------------------------------------------------------


async def test_supervisor_assigns_and_reads_the_report_agent_may_not(client) -> None:
    assert "supervisor" in ROLES
    await chat(client, "sv1", text="人工")
    t = await Ticket.get(member__accounts__external_id="sv1")
    first = await create_staff("sv-first", "secret-pass-1", ["agent"])
    second = await create_staff("sv-second", "secret-pass-1", ["agent"])
    assert await inbox.claim(_services(client), t.id, first.id)
    # an agent: no assign form, the route refused, no report
    await staff_login(client, "sv-agent", ["agent"])
    html, token = await csrf(client, f"/inbox/t/{t.id}")
    assert "/assign" not in html
    refused = await client.post(
        f"/inbox/t/{t.id}/assign", data={"csrf_token": token, "staff_id": str(second.id), "expected": str(first.id)}
    )
    assert refused.status == 403 and (await Ticket.get(id=t.id)).assignee_id == first.id
    assert (await client.get("/inbox/report")).status == 403
    assert "/inbox/report" not in await (await client.get("/inbox")).text()
    # a supervisor: works the inbox, re-assigns (compare-and-set on the owner), reads the report
    await staff_login(client, "sv-boss", ["supervisor"])
    boss = await StaffUser.get(username="sv-boss")
    assert boss.has_role("agent") and boss.has_role("supervisor") and not boss.has_role("reviewer")
    html, token = await csrf(client, f"/inbox/t/{t.id}?lang=zh_CN")
    assert f'action="/inbox/t/{t.id}/assign"' in html and "改派" in html
    assert "sv-first (坐席)" in html and "sv-boss (值班长)" in html  # role names in the reader's language
    stale = await client.post(
        f"/inbox/t/{t.id}/assign",
        data={"csrf_token": token, "staff_id": str(second.id), "expected": str(second.id)},
        allow_redirects=False,
    )
    assert stale.headers["Location"].endswith("flash=changed") and (await Ticket.get(id=t.id)).assignee_id == first.id
    ok = await client.post(
        f"/inbox/t/{t.id}/assign",
        data={"csrf_token": token, "staff_id": str(second.id), "expected": str(first.id)},
        allow_redirects=False,
    )
    assert ok.status == 303 and (await Ticket.get(id=t.id)).assignee_id == second.id
    assert await StaffAudit.filter(action="ticket.assign", target_id=str(t.id), staff_id=boss.id).count() == 2
    assert (await client.get("/inbox/report")).status == 200
    assert "/inbox/report" in await (await client.get("/inbox")).text()
    # and may hand another agent's ticket to the hotline
    resp = await client.post(
        f"/inbox/t/{t.id}/hotline", data={"csrf_token": token, "phone": "13800135678"}, allow_redirects=False
    )
    assert resp.headers["Location"].endswith("flash=hotline")
    assert (await Ticket.get(id=t.id)).assignee_id == second.id


async def test_staff_cli_accepts_the_supervisor_role() -> None:
    import argparse

    from bot.staff import cli as staff_cli

    parser = argparse.ArgumentParser()
    staff_cli.register(parser.add_subparsers(dest="command"))
    args = parser.parse_args(["staff", "add", "lead", "--role", "supervisor", "--password", "x" * 10])
    assert args.role == ["supervisor"]
    with pytest.raises(SystemExit):
        parser.parse_args(["staff", "add", "lead", "--role", "overlord"])
    assert any(roles == ["supervisor"] for _u, roles, _n in staff_cli.DEMO_STAFF)


# --- dashboard ---------------------------------------------------------------------------------


async def entry(member_id: int, direction: str, at: datetime, **fields) -> None:  # type: ignore[no-untyped-def]
    """A transcript row dated ``at`` (created, then back-dated: auto_now_add sets "now")."""
    row = await TranscriptEntry.create(member_id=member_id, channel="web", direction=direction, **fields)
    await TranscriptEntry.filter(id=row.id).update(created_at=at)


async def test_dashboard_counts_hand_offs_from_a_known_history(services) -> None:
    """Four members on one day, counted by hand:

    - a: asks, answered, opens a ticket, handed to the hotline; comes back 2 days later
      with another ticket (same reason, no answer before it): a repeat;
    - b: asks, answered, opens a ticket, handed off (but unreachable, so no transcript line
      says so: the ticket's hand-off is what counts); never comes back: not a repeat;
    - c: asks, answered, opens a ticket an agent handles online (no hand-off);
    - d: asks, answered, never needs a person.
    Funnel: 4 conversations asked; hotline reached by a and b (2), online agent by a, b, c (3).
    Repeat-inquiry share: 1 of the 2 hand-offs. c's ticket is not a hotline ticket.
    """
    tz = ZoneInfo("UTC")
    day = datetime(2026, 11, 2, tzinfo=timezone.utc)
    staff = await create_staff("kpi-agent", "secret-pass-1", ["agent"])
    members = {}
    for i, name in enumerate("abcd"):
        m = await member(f"kpi-{name}")
        members[name] = m
        at = day + timedelta(hours=1 + i)
        await entry(m.id, "in", at, text="宽带断网怎么办", msg_id=f"kpi-{name}-1")
        await entry(m.id, "out", at + timedelta(seconds=1), text="…", kind="answer")
        if name == "d":
            continue
        await entry(m.id, "in", at + timedelta(minutes=1), text="人工", msg_id=f"kpi-{name}-2")
        await entry(m.id, "out", at + timedelta(minutes=1, seconds=1), text="…", kind="human")
        t, _ = await inbox.open_ticket(services, m.id, "web", "human")
        await Ticket.filter(id=t.id).update(created_at=at + timedelta(minutes=1))
        if name == "b":  # b cannot be told (no reachable channel): the ticket's hand-off still counts
            await ChannelAccount.filter(member_id=m.id).update(active=False)
        if name in "ab":
            assert (await inbox.hand_off_to_hotline(services, await Ticket.get(id=t.id), staff.id)).done
            await Ticket.filter(id=t.id).update(hotline_at=at + timedelta(minutes=5))
            await TranscriptEntry.filter(member_id=m.id, kind="hotline").update(created_at=at + timedelta(minutes=5))
        await inbox.close(services, t.id, staff.id)
    again, _ = await inbox.open_ticket(services, members["a"].id, "web", "human")
    await Ticket.filter(id=again.id).update(created_at=day + timedelta(days=2))

    start, end = day, day + timedelta(days=1)
    window, gap = timedelta(minutes=10), timedelta(minutes=30)
    history = await dashboard_data.load_history(start, end, window=window, gap=gap)
    assert sorted((t.member_id, t.topic) for t in history.tickets) == sorted(
        (members[n].id, "reason:human") for n in "ab"
    )
    assert not await TranscriptEntry.filter(member_id=members["b"].id, kind="hotline").exists()
    rep = kpis.report(
        history, start=start, end=end, period="day", tz=tz, window=window, gap=gap, now=end + timedelta(days=8)
    )
    funnel = {s.layer: s.reached for s in rep.funnel}
    assert funnel["hotline"] == 2 and funnel["online_agent"] == 3 and funnel["self_service"] == 4
    online = next(s for s in rep.funnel if s.layer == "online_agent")
    assert online.handon_rate == pytest.approx(2 / 3)  # a and b went on to the hotline
    assert rep.total.repeat == kpis.Ratio(1, 2)
    assert rep.total.conversations == 4
