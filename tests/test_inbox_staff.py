"""The inbox as a service centre runs it: the queue ordered and paged in SQL (urgent never
hidden), filters and search, readable transcripts, member tags (inbox, API, CSV import,
audited) with VIP priority and tag-targeted offers end to end, CSAT comments and the
per-agent report, SLA breach gauges."""

from __future__ import annotations

import re
from datetime import datetime, timedelta, timezone

from hypothesis import HealthCheck, given
from hypothesis import settings as hsettings
from hypothesis import strategies as st
from prometheus_client import REGISTRY

from bot.core.models import Member, TranscriptEntry
from bot.core.accounts import get_or_create_account
from bot.staff.auth import create_staff
from community.inbox import queue as ticket_queue
from community.inbox import report as inbox_report
from community.inbox import service as inbox
from community.inbox import sla
from community.inbox import transcript as transcripts
from community.inbox.models import Ticket, TicketMessage
from community.members import tags as member_tags
from community.members.models import MemberTag, MemberTagChange
from community.offers.models import Offer, OfferEvent
from tests.community_helpers import chat, csrf, staff_login

QUESTION = "我的流量还剩多少，怎么查？"


async def member(external: str, channel: str = "web", **fields) -> Member:  # type: ignore[no-untyped-def]
    account = await get_or_create_account(channel, external)
    if fields:
        await Member.filter(id=account.member_id).update(**fields)
    return await Member.get(id=account.member_id)


_batches = iter(range(1_000_000))


async def bulk_tickets(n: int, *, channel: str = "web", start: datetime | None = None) -> list[int]:
    """``n`` ordinary live tickets, oldest first, inserted in bulk (fast for big queues).
    They share one creation time; the queue breaks ties by ticket number (FIFO)."""
    start = start or datetime.now(timezone.utc) - timedelta(minutes=5)
    prefix = f"bulk{next(_batches)}-"
    await Member.bulk_create([Member(display_name=f"{prefix}{i}") for i in range(n)])
    created = await Member.filter(display_name__startswith=prefix).order_by("id").values_list("id", flat=True)
    far = datetime.now(timezone.utc) + timedelta(days=1)
    await Ticket.bulk_create(
        [
            Ticket(
                member_id=mid,
                channel=channel,
                reason="human",
                summary=f"问题 {i}",
                open_key=mid,
                first_response_due=far,
                resolution_due=far,
            )
            for i, mid in enumerate(created)
        ]
    )
    ids = await Ticket.filter(member_id__in=created).order_by("id").values_list("id", flat=True)
    await Ticket.filter(id__in=ids).update(created_at=start)
    return list(ids)


async def test_urgent_ticket_is_first_behind_a_long_backlog(services) -> None:
    await bulk_tickets(250)
    complaint, _ = await inbox.open_ticket(services, (await member("late")).id, "web", "complaint", summary="我要投诉")
    first = await ticket_queue.page(ticket_queue.QueueFilter(), 1, 50)
    assert first.tickets[0].id == complaint.id
    assert first.total == 251 and first.pages == 6 and first.urgent_total == 1
    # FIFO after the urgent one, and the pages cover every ticket exactly once
    seen = []
    for n in range(1, 7):
        seen += [t.id for t in (await ticket_queue.page(ticket_queue.QueueFilter(), n, 50)).tickets]
    assert len(seen) == len(set(seen)) == 251
    assert seen[1:] == sorted(seen[1:])
    # the legacy helper uses the same order
    assert (await inbox.queue(10))[0].id == complaint.id


async def test_sla_breach_counts_as_urgent_and_is_alerted(services) -> None:
    ids = await bulk_tickets(3)
    past = datetime.now(timezone.utc) - timedelta(minutes=1)
    await Ticket.filter(id=ids[2]).update(first_response_due=past)
    page = await ticket_queue.page(ticket_queue.QueueFilter(), 1)
    assert [t.id for t in page.tickets] == [ids[2], ids[0], ids[1]]
    assert page.breached_total == 1
    watch = sla.SlaWatch()
    counts = await watch.check(services)
    assert counts.first_response == 1 and counts.resolution == 0 and counts.live == 3
    assert REGISTRY.get_sample_value("everycsr_inbox_sla_breached_tickets", {"sla": "first_response"}) == 1
    assert REGISTRY.get_sample_value("everycsr_inbox_live_tickets", {"urgent": "no"}) == 3
    # a ticket that breaches later is announced once to open pages
    published = []
    real = sla.events.publish

    async def spy(svc, data):  # type: ignore[no-untyped-def]
        published.append(data)
        await real(svc, data)

    sla.events.publish = spy  # type: ignore[assignment]
    try:
        await Ticket.filter(id=ids[0]).update(resolution_due=past)
        await watch.check(services)
        await watch.check(services)
    finally:
        sla.events.publish = real  # type: ignore[assignment]
    assert [p["ticket"] for p in published if p.get("what") == "sla"] == [ids[0]]


async def test_filters_and_search(services) -> None:
    web_ids = await bulk_tickets(4, channel="web")
    sms_member = await member("s1", channel="sms", display_name="短信用户")
    await member_tags.add_tag(sms_member.id, "VIP", actor="t", source="api")
    sms_ticket, _ = await inbox.open_ticket(services, sms_member.id, "sms", "human", summary="话费查询 宽带")
    agent = await create_staff("fil", "secret-pass-1", ["agent"])
    assert await inbox.claim(services, web_ids[1], agent.id)
    F = ticket_queue.QueueFilter

    async def ids(f: F) -> list[int]:  # type: ignore[valid-type]
        return [t.id for t in (await ticket_queue.page(f)).tickets]

    assert await ids(F(channel="sms")) == [sms_ticket.id]
    assert await ids(F(tag="vip")) == [sms_ticket.id]
    assert await ids(F(assignee=str(agent.id))) == [web_ids[1]]
    assert web_ids[1] not in await ids(F(assignee="none"))
    assert await ids(F(status="claimed")) == [web_ids[1]]
    assert await ids(F(search="宽带")) == [sms_ticket.id]  # summary
    assert await ids(F(search="短信")) == [sms_ticket.id]  # member name
    await TicketMessage.create(ticket_id=web_ids[3], author="member", text="路由器一直闪红灯")
    assert await ids(F(search="红灯")) == [web_ids[3]]  # a message on the ticket
    assert await ids(F(search=f"#{web_ids[2]}")) == [web_ids[2]]
    assert await ids(F(urgent_only=True)) == [sms_ticket.id]  # VIP made it urgent
    assert await inbox.close(services, web_ids[0], None, admin=True)
    assert web_ids[0] not in await ids(F()) and await ids(F(status="closed")) == [web_ids[0]]
    f = F.from_query({"status": "bogus", "assignee": "me", "q": " x " * 100, "tag": " VIP "}, me=agent.id)
    assert f.status == "live" and f.assignee == str(agent.id) and len(f.search) <= 100 and f.tag == "vip"
    assert F.from_query({"assignee": "1 or 1=1"}).assignee == ""


async def test_queue_page_filters_over_http(client, services) -> None:
    await bulk_tickets(3)
    m = await member("h1", channel="sms")
    t, _ = await inbox.open_ticket(services, m.id, "sms", "complaint", summary="信号差")
    await staff_login(client, "qa1", ["agent"])
    html = await (await client.get("/inbox?channel=sms")).text()
    assert f'data-ticket="{t.id}"' in html and html.count("data-ticket=") == 1
    frag = await (await client.get("/inbox/queue?q=信号")).text()
    assert f'data-ticket="{t.id}"' in frag and frag.count("data-ticket=") == 1
    bad = await client.get("/inbox?page=abc&status=<x>&assignee=../")
    assert bad.status == 200


async def test_handover_by_typing_human_shows_that_message(client, services) -> None:
    await chat(client, "hm1", text="人工")
    ticket = await Ticket.get(member__accounts__external_id="hm1")
    texts = [m.text for m in await TicketMessage.filter(ticket_id=ticket.id)]
    assert texts == ["人工"]
    # a complaint's text is recorded once, not twice
    await chat(client, "hm2", text="我要投诉你们的客服态度")
    t2 = await Ticket.get(member__accounts__external_id="hm2")
    assert [m.text for m in await TicketMessage.filter(ticket_id=t2.id)] == ["我要投诉你们的客服态度"]


async def test_transcript_shows_labels_and_offered_choices_in_order(client, services) -> None:
    replies = await chat(client, "tr1", text=QUESTION)
    answer = replies[0]
    fb_up = next(c for c in answer["choices"] if c["action"].startswith("fb:up:"))
    await chat(client, "tr1", action=fb_up["action"])
    await chat(client, "tr1", text="人工")
    ticket = await Ticket.get(member__accounts__external_id="tr1")
    lines = await transcripts.lines_for(ticket.member_id, services.translator.bind("zh_CN"))
    ins = [line for line in lines if line.direction == "in"]
    assert [line.text for line in ins] == [QUESTION, fb_up["label"], "人工"]
    assert ins[1].tapped and ins[1].raw == fb_up["action"]
    offered = next(line for line in lines if line.direction == "out" and line.offered)
    assert [o.label for o in offered.offered] == [c["label"] for c in answer["choices"]]
    # on the page: the label, not the code
    await staff_login(client, "tr-agent", ["agent"])
    html = await (await client.get(f"/inbox/t/{ticket.id}")).text()
    section = html.split('id="transcript"', 1)[1]
    assert fb_up["label"] in section and ">" + fb_up["action"] + "<" not in section


def test_transcript_resolves_digits_and_old_rows_without_labels() -> None:
    now = datetime.now(timezone.utc)
    _ = lambda msgid, **kw: msgid % kw if kw else msgid  # noqa: E731

    def e(i: int, direction: str, **kw) -> TranscriptEntry:  # type: ignore[no-untyped-def]
        return TranscriptEntry(
            id=i,
            member_id=1,
            channel="sms",
            direction=direction,
            created_at=now + timedelta(seconds=kw.pop("sec", i)),
            **kw,
        )

    entries = [
        e(4, "in", text="2", sec=3),
        e(1, "in", text="流量"),
        e(
            2,
            "out",
            text="您是不是想问",
            payload={"choices": ["kb:7", "kb:9", "none"], "labels": ["查流量", "办流量包", "都不是"]},
        ),
        e(5, "out", text="old", payload={"choices": ["kb:7", "fb:down:7"]}, sec=4),
        e(6, "in", action="fb:down:7", sec=5),
        e(7, "in", action="kb:7", sec=6),
    ]
    lines = transcripts.build(entries, _, {7: "查流量标题"})
    assert [line.entry.id for line in lines] == [1, 2, 4, 5, 6, 7]  # by time, not by insertion
    assert lines[2].text == "办流量包" and lines[2].tapped and lines[2].raw == "2"
    assert [o.label for o in lines[1].offered] == ["查流量", "办流量包", "都不是"]
    assert [o.label for o in lines[3].offered] == ["Knowledge item: 查流量标题", "👎 Not helpful"]
    assert lines[4].text == "👎 Not helpful"
    assert lines[5].text == "Knowledge item: 查流量标题"


async def test_tags_are_audited_and_idempotent(services) -> None:
    m = await member("tg1", tags=["Plan:5G"])  # set before tags were rows
    assert await member_tags.add_tag(m.id, " VIP ", actor="staff:a", source="inbox")
    assert not await member_tags.add_tag(m.id, "vip", actor="staff:a", source="inbox")
    assert (await Member.get(id=m.id)).tags == ["plan:5g", "vip"]
    assert set(await MemberTag.filter(member_id=m.id).values_list("tag", flat=True)) == {"plan:5g", "vip"}
    assert await member_tags.remove_tag(m.id, "plan:5g", actor="staff:b", source="api")
    assert not await member_tags.remove_tag(m.id, "plan:5g", actor="staff:b", source="api")
    changes = [(c.tag, c.op, c.actor, c.source) for c in await MemberTagChange.filter(member_id=m.id).order_by("id")]
    assert changes == [("vip", "add", "staff:a", "inbox"), ("plan:5g", "remove", "staff:b", "api")]
    for bad in ("", "   ", "a,b", "x" * 65, "tab\there"):
        try:
            await member_tags.add_tag(m.id, bad, actor="x", source="api")
        except member_tags.TagError:
            pass
        else:
            raise AssertionError(f"accepted {bad!r}")
    assert (await Member.get(id=m.id)).tags == ["vip"]


async def test_csv_import(services) -> None:
    a = await member("imp1")
    b = await member("imp2", channel="telegram")
    text = (
        "member,tag,op\n"
        f"{a.id},vip\n"
        "telegram:imp2,plan:5g-128,add\n"
        f"{a.id},vip,remove\n"
        "nobody:x,vip\n"
        f"{b.id},bad,tag\n"
        f"{b.id},a,b,c\n"
        "only-one-column\n"
    )
    result = await member_tags.import_csv(text, actor="cli:ops")
    assert result.changed == 3 and result.unchanged == 0
    assert len(result.errors) == 4 and result.errors[0].startswith("line 5:")
    assert (await Member.get(id=a.id)).tags == [] and (await Member.get(id=b.id)).tags == ["plan:5g-128"]
    again = await member_tags.import_csv("telegram:imp2,plan:5g-128\n", actor="cli:ops")
    assert again.changed == 0 and again.unchanged == 1
    assert await MemberTagChange.filter(source="cli").count() == 3


async def test_tags_api_needs_staff_and_csrf(client, services) -> None:
    m = await member("api1")
    url = f"/api/v1/staff/members/{m.id}/tags"
    assert (await client.post(url, json={"tag": "vip"})).status == 401
    await staff_login(client, "tagger", ["agent"])
    assert (await client.post(url, json={"tag": "vip"})).status == 403  # no CSRF token
    _, token = await csrf(client, "/inbox")
    h = {"X-CSRF-Token": token}
    resp = await client.post(url, json={"tag": "VIP"}, headers=h)
    assert resp.status == 200 and await resp.json() == {"member": m.id, "tags": ["vip"], "changed": True}
    assert (await (await client.post(url, json={"tag": "vip"}, headers=h)).json())["changed"] is False
    assert (await client.post(url, data="not json", headers=h)).status == 400
    assert (await client.post(url, json={"tag": ["x"]}, headers=h)).status == 400
    assert (await client.post(url, json={"tag": "a,b"}, headers=h)).status == 400
    assert (await client.post("/api/v1/staff/members/999999/tags", json={"tag": "x"}, headers=h)).status == 404
    assert (await (await client.get(url)).json())["tags"] == ["vip"]
    resp = await client.delete(f"{url}/vip", headers=h)
    assert (await resp.json())["tags"] == []
    audit = await MemberTagChange.filter(member_id=m.id).order_by("id").values_list("op", "actor", "source")
    assert audit == [("add", "staff:tagger", "api"), ("remove", "staff:tagger", "api")]


async def test_vip_tag_makes_the_next_ticket_urgent_end_to_end(client, services) -> None:
    await chat(client, "v1", text="你好")
    m = await Member.get(accounts__external_id="v1")
    await staff_login(client, "vipper", ["agent"])
    _, token = await csrf(client, "/inbox")
    await client.post(f"/api/v1/staff/members/{m.id}/tags", json={"tag": "vip"}, headers={"X-CSRF-Token": token})
    await bulk_tickets(60)
    await chat(client, "v1", text="人工")
    ticket = await Ticket.get(member_id=m.id)
    assert ticket.urgent and ticket.urgent_why == ["vip"]
    html = await (await client.get("/inbox")).text()
    first = re.search(r'data-ticket="(\d+)"', html)
    assert first and int(first.group(1)) == ticket.id
    # removing VIP by the API takes the urgency off the live ticket; adding it back restores it
    h = {"X-CSRF-Token": token}
    await client.delete(f"/api/v1/staff/members/{m.id}/tags/vip", headers=h)
    t = await Ticket.get(id=ticket.id)
    assert not t.urgent and t.urgent_why == []
    await client.post(f"/api/v1/staff/members/{m.id}/tags", json={"tag": "VIP"}, headers=h)
    t = await Ticket.get(id=ticket.id)
    assert t.urgent and t.urgent_why == ["vip"]
    # tagging from the ticket page (form) works too, and shows up in the tag filter
    await client.post(f"/inbox/t/{ticket.id}/tags", data={"csrf_token": token, "op": "add", "tag": "plan:5g"})
    assert (await Member.get(id=m.id)).tags == ["plan:5g", "vip"]
    frag = await (await client.get("/inbox/queue?tag=plan:5g")).text()
    assert frag.count("data-ticket=") == 1


async def test_tag_targeted_offer_reaches_only_tagged_members(tmp_path) -> None:
    from aiohttp.test_utils import TestClient, TestServer

    from bot.app import create_app
    from tests.conftest import load_sample_kb, make_settings

    app = create_app(
        make_settings(tmp_path, offers_quiet_hours="", public_url="https://csr.example"), db_setup="schema"
    )
    async with TestClient(TestServer(app)) as c:
        await load_sample_kb(app)
        offer = await Offer.create(
            title="5G 套餐升级",
            body="升级更划算",
            url="https://shop.example/5g",
            action_label="升级",
            trigger_tags=["plan:5g*"],
        )
        await chat(c, "off1", text="你好")
        await chat(c, "off2", text="你好")
        m1 = await Member.get(accounts__external_id="off1")
        await member_tags.add_tag(m1.id, "plan:5g-128", actor="staff:mk", source="api")
        tagged = await chat(c, "off1", text=QUESTION)
        plain = await chat(c, "off2", text=QUESTION)
        assert [card["title"] for card in tagged[0]["cards"]] == [offer.title]
        assert plain[0]["cards"] == []
        ev = await OfferEvent.get(kind="impression")
        assert ev.member_id == m1.id and "plan:5g-128" in ev.tags


async def test_survey_comment_and_agent_report(client, services) -> None:
    agent = await create_staff("csat", "secret-pass-1", ["agent"])
    await chat(client, "cs1", text="人工")
    t = await Ticket.get(member__accounts__external_id="cs1")
    assert await inbox.claim(services, t.id, agent.id)
    await inbox.agent_reply(services, await Ticket.get(id=t.id), agent.id, "您好", "nonce-cs1-0001")
    assert await inbox.close(services, t.id, agent.id)
    thanks = await chat(client, "cs1", action=f"sv:{t.id}:2")
    assert thanks[0]["choices"] == [{"label": thanks[0]["choices"][0]["label"], "action": f"svc:{t.id}"}]
    prompt = await chat(client, "cs1", action=f"svc:{t.id}")
    assert prompt[0]["kind"] == "survey_comment"
    await chat(client, "cs1", text="等太久了")
    assert (await Ticket.get(id=t.id)).survey_comment == "等太久了"
    # once only, and only on the member's own ticket
    await chat(client, "cs1", action=f"svc:{t.id}")
    await chat(client, "cs1", text="再改一次")
    assert (await Ticket.get(id=t.id)).survey_comment == "等太久了"
    other = await member("cs2")
    assert not await inbox.record_survey_comment(services, other.id, t.id, "冒充")
    # a second ticket by the same agent, rated 5
    await chat(client, "cs3", text="人工")
    t3 = await Ticket.get(member__accounts__external_id="cs3")
    assert await inbox.claim(services, t3.id, agent.id)
    assert await inbox.close(services, t3.id, agent.id)
    await chat(client, "cs3", action=f"sv:{t3.id}:5")
    rows = await inbox_report.agent_report()
    row = next(r for r in rows if r.staff_id == agent.id)
    assert (row.closed, row.rated, row.satisfied, row.score_sum) == (2, 2, 1, 7)
    assert row.csat == 0.5 and row.average == 3.5 and row.replied == 1 and row.within_sla == 1
    assert row.comments == [(t.id, 2, "等太久了")]
    await staff_login(client, "boss", ["agent"])
    html = await (await client.get("/inbox/report")).text()
    assert "等太久了" in html and "50 %" in html


async def test_migration_backfills_tag_rows_from_tag_lists(services) -> None:
    """Members tagged before tags were rows become filterable (bot/migrations/0009_staff.py)."""
    import importlib

    from tortoise import Tortoise

    migration = importlib.import_module("bot.migrations.0009_staff")
    m = await member("old-tags", tags=["VIP", "plan:5g", "vip", "bad,tag"])
    await MemberTag.filter(member_id=m.id).delete()

    class Editor:
        client = Tortoise.get_connection("default")

    await migration.backfill_tag_rows(None, Editor())
    assert sorted(await MemberTag.filter(member_id=m.id).values_list("tag", flat=True)) == ["plan:5g", "vip"]
    assert await ticket_queue.page(ticket_queue.QueueFilter(tag="plan:5g")) is not None


async def test_concurrent_tag_changes_lose_nothing_on_postgres(fresh_postgres_url: str) -> None:
    """Twenty staff tag one member at once (PostgreSQL, row lock on the member): every tag
    is kept in both the rows and ``Member.tags``, with one audit record each; the queue's SQL
    (CASE ordering, tag subquery, search) runs on PostgreSQL too."""
    import asyncio

    from bot.core import storage

    await storage.open_db(fresh_postgres_url, create_schema=True)
    try:
        m = await Member.create(display_name="pg-tags")
        tags = [f"t{i}" for i in range(20)]
        results = await asyncio.gather(
            *[member_tags.add_tag(m.id, t, actor="staff:x", source="api") for t in tags],
            *[member_tags.add_tag(m.id, "vip", actor="staff:y", source="api") for _ in range(5)],
        )
        assert sum(results) == 21  # 20 distinct tags + "vip" once
        assert sorted((await Member.get(id=m.id)).tags) == sorted([*tags, "vip"])
        assert await MemberTag.filter(member_id=m.id).count() == 21
        assert await MemberTagChange.filter(member_id=m.id).count() == 21
        far = datetime.now(timezone.utc) + timedelta(days=1)
        plain = await Ticket.create(
            member_id=(await Member.create()).id,
            channel="web",
            reason="human",
            open_key=-1,
            first_response_due=far,
            resolution_due=far,
            summary="宽带",
        )
        vip = await Ticket.create(
            member_id=m.id,
            channel="sms",
            reason="human",
            urgent=True,
            urgent_why=["vip"],
            open_key=m.id,
            first_response_due=far,
            resolution_due=far,
        )
        F = ticket_queue.QueueFilter
        assert [t.id for t in (await ticket_queue.page(F())).tickets] == [vip.id, plain.id]
        assert [t.id for t in (await ticket_queue.page(F(tag="vip"))).tickets] == [vip.id]
        assert [t.id for t in (await ticket_queue.page(F(search="宽带"))).tickets] == [plain.id]
    finally:
        await storage.close_db()


async def test_reprioritize_keeps_other_reasons(services) -> None:
    m = await member("rp1", tags=["vip"])
    t, _ = await inbox.open_ticket(services, m.id, "web", "complaint", summary="我要投诉")
    assert t.urgent_why == ["complaint", "vip"]
    await member_tags.remove_tag(m.id, "vip", actor="t", source="api")
    assert await inbox.reprioritize(services, m.id)
    t = await Ticket.get(id=t.id)
    assert t.urgent and t.urgent_why == ["complaint"]
    assert not await inbox.reprioritize(services, m.id)  # nothing left to change
    assert not await inbox.reprioritize(services, (await member("rp2")).id)  # no live ticket


@given(st.text(max_size=80))
def test_normalize_tag_is_idempotent_and_clean(raw: str) -> None:
    try:
        tag = member_tags.normalize_tag(raw)
    except member_tags.TagError:
        return
    assert tag == member_tags.normalize_tag(tag)
    assert 1 <= len(tag) <= member_tags.MAX_TAG and "," not in tag and tag == tag.strip() and tag == tag.lower()


@given(st.text(max_size=300))
@hsettings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
async def test_csv_import_never_raises_on_any_text(services, text: str) -> None:  # type: ignore[no-untyped-def]
    result = await member_tags.import_csv(text, actor="cli:fuzz")
    assert result.changed + result.unchanged + len(result.errors) <= text.count("\n") + text.count("\r") + 1


async def test_migration_backfill_on_postgres(fresh_postgres_url: str) -> None:
    import importlib

    from tortoise import Tortoise

    from bot.core import storage

    await storage.migrate(fresh_postgres_url)
    await storage.open_db(fresh_postgres_url)
    try:
        m = await Member.create(display_name="pg-old", tags=["VIP", "plan:5g"])
        migration = importlib.import_module("bot.migrations.0009_staff")

        class Editor:
            client = Tortoise.get_connection("default")

        await migration.backfill_tag_rows(None, Editor())
        assert sorted(await MemberTag.filter(member_id=m.id).values_list("tag", flat=True)) == ["plan:5g", "vip"]
    finally:
        await storage.close_db()
