"""Knowledge lifecycle: review workflow and permissions, member contributions, learned
variants, knowledge wanted, notices, XLSX import."""

from __future__ import annotations

import re

import openpyxl
from hypothesis import given, settings as hsettings, strategies as st

from bot.core.app_keys import SERVICES
from bot.core.models import Member, OutboxMessage
from community.kb_io import import_rows, parse_file
from community.knowledge_admin import learning, wanted
from community.knowledge_admin.models import CandidateVariant, KnowledgeContribution, KnowledgeVersion
from community.models import KnowledgeItem
from tests.community_helpers import chat, csrf, staff_login

FORM = {
    "key": "kb-new-1",
    "title": "夜间流量包怎么开通",
    "answer": "发送 YJLL 到 10086。",
    "locale": "zh_CN",
    "variants": "晚上的流量包\n夜间包",
    "difficulty": "1",
}


async def _new_item(client, token, **extra):
    resp = await client.post("/admin/knowledge/new", data={**FORM, "csrf_token": token, **extra}, allow_redirects=False)
    assert resp.status == 302, await resp.text()
    return int(resp.headers["Location"].rsplit("/", 1)[1])


async def test_agent_drafts_but_cannot_approve_reviewer_publishes(client):
    await staff_login(client, "ag", ["agent"])
    _html, token = await csrf(client, "/admin/knowledge/new")
    item_id = await _new_item(client, token, submit="1")
    item = await KnowledgeItem.get(id=item_id)
    assert item.status == "pending"
    assert (
        client.app[SERVICES].kb.decide("夜间流量包怎么开通", "zh_CN").matches[:1] == ()
        or client.app[SERVICES].kb.decide("夜间流量包怎么开通", "zh_CN").matches[0].item_id != item_id
    )
    v = await KnowledgeVersion.get(item_id=item_id, number=1)
    resp = await client.post(f"/admin/knowledge/versions/{v.id}/approve", data={"csrf_token": token})
    assert resp.status == 403
    assert (await KnowledgeItem.get(id=item_id)).status == "pending"
    await client.post("/logout", data={"csrf_token": token})
    await staff_login(client, "rev", ["reviewer"])
    html, token = await csrf(client, f"/admin/knowledge/{item_id}")
    assert "夜间流量包怎么开通" in html
    resp = await client.post(
        f"/admin/knowledge/versions/{v.id}/approve", data={"csrf_token": token, "reason": "ok"}, allow_redirects=False
    )
    assert resp.status == 302
    assert (await KnowledgeItem.get(id=item_id)).status == "published"
    d = client.app[SERVICES].kb.decide("夜间流量包怎么开通", "zh_CN")
    assert d.matches[0].item_id == item_id
    # approving twice is a conflict, not a second publication
    resp = await client.post(f"/admin/knowledge/versions/{v.id}/approve", data={"csrf_token": token})
    assert resp.status == 409


async def test_edit_of_published_item_waits_for_review_and_diff(client):
    await staff_login(client, "rev2", ["reviewer"])
    _h, token = await csrf(client, "/admin/knowledge/new")
    item_id = await _new_item(client, token, submit="1")
    v1 = await KnowledgeVersion.get(item_id=item_id, number=1)
    await client.post(f"/admin/knowledge/versions/{v1.id}/approve", data={"csrf_token": token})
    resp = await client.post(
        f"/admin/knowledge/{item_id}",
        data={
            **FORM,
            "csrf_token": token,
            "submit": "1",
            "answer": "发送 YJLL 到 10086，或在 App 里开通。",
            "reason": "App 也能办",
        },
    )
    assert resp.status == 200
    item = await KnowledgeItem.get(id=item_id)
    assert item.answer == "发送 YJLL 到 10086。"  # live text unchanged until approved
    html = await (await client.get(f"/admin/knowledge/{item_id}/diff?a=1&b=2")).text()
    assert "+answer: 发送 YJLL 到 10086，或在 App 里开通。" in html.replace("&#43;", "+")
    v2 = await KnowledgeVersion.get(item_id=item_id, number=2)
    resp = await client.post(f"/admin/knowledge/versions/{v2.id}/reject", data={"csrf_token": token, "reason": ""})
    assert resp.status == 400  # a rejection needs a reason
    await client.post(f"/admin/knowledge/versions/{v2.id}/reject", data={"csrf_token": token, "reason": "太长"})
    assert (await KnowledgeVersion.get(id=v2.id)).state == "rejected"
    await client.post(f"/admin/knowledge/{item_id}/retire", data={"csrf_token": token, "reason": "停办"})
    assert (await KnowledgeItem.get(id=item_id)).status == "retired"
    assert item_id not in client.app[SERVICES].kb.matcher


async def test_pages_need_login_and_escape(client):
    resp = await client.get("/admin/knowledge", allow_redirects=False)
    assert resp.status == 302 and "/login" in resp.headers["Location"]
    await staff_login(client, "ag2", ["agent"])
    _h, token = await csrf(client, "/admin/knowledge/new")
    item_id = await _new_item(client, token, title="<script>x</script>", key="xss-1")
    html = await (await client.get(f"/admin/knowledge/{item_id}")).text()
    assert "<script>x</script>" not in html and "&lt;script&gt;" in html


async def test_member_contribution_cannot_publish_and_is_notified(client):
    replies = await chat(client, "m1", text="我来补充")
    assert replies[0]["text"]
    await chat(client, "m1", text="营业厅周末开门吗\n周末 9:00-17:00 营业。")
    c = await KnowledgeContribution.get()
    item = await KnowledgeItem.get(id=c.item_id)
    assert item.status == "pending" and c.status == "pending"
    # a member has no way to publish: the member's chat cannot reach the review step
    await chat(client, "m1", text="/contribute #%d 批准" % item.id)
    assert (await KnowledgeItem.get(id=item.id)).status == "pending"
    await staff_login(client, "rev3", ["reviewer"])
    _h, token = await csrf(client, "/admin/knowledge")
    v = await KnowledgeVersion.filter(item_id=item.id).order_by("number").first()
    await client.post(f"/admin/knowledge/versions/{v.id}/approve", data={"csrf_token": token, "reason": "好"})
    c = await KnowledgeContribution.get(id=c.id)
    assert c.status == "approved"
    msgs = await OutboxMessage.filter(purpose="notification", idempotency_key=f"kbcontrib:{c.id}:approved")
    assert len(msgs) == 1


async def test_contribution_with_blocked_words_is_refused_and_audited(client):
    from community.moderation import service as moderation
    from community.moderation.models import ModerationAudit

    await moderation.add_word("赌博", "word", "block", actor="admin")
    await chat(client, "m2", text="我来补充")
    replies = await chat(client, "m2", text="怎么赚钱\n来我们的赌博网站")
    assert replies[0]["kind"] == "moderation"
    assert await KnowledgeContribution.all().count() == 0
    assert await ModerationAudit.filter(action="block", content_type="contribution").count() == 1
    await chat(client, "m2", text="/contribute 营业厅几点开门\n9:00 开门")  # a clean one still goes through
    assert await KnowledgeContribution.all().count() == 1


async def test_pick_becomes_variant_after_quorum(client):
    services = client.app[SERVICES]
    item = await KnowledgeItem.filter(status="published", locale="zh_CN").first()
    query = "那个东西到底怎么弄啊啊"
    members = [await Member.create(display_name=f"x{i}") for i in range(3)]
    for m in members[:2]:
        await learning.suggest_variant(services, item.id, query, "pick", m.id)
    cv = await CandidateVariant.get(item_id=item.id)
    assert cv.status == "candidate" and len(cv.members) == 2
    await learning.suggest_variant(services, item.id, query, "pick", members[0].id)  # same member again
    assert (await CandidateVariant.get(id=cv.id)).status == "candidate"
    await learning.suggest_variant(services, item.id, query, "ticket", members[2].id)
    assert (await CandidateVariant.get(id=cv.id)).status == "accepted"
    assert query in (await KnowledgeItem.get(id=item.id)).variants
    assert services.kb.matcher.search(query, limit=1)[0].item_id == item.id


def test_wanted_clusters_count_askers():
    rows = [
        (1, 1, "宠物能带进营业厅吗", ""),
        (2, 2, "宠物可以带进营业厅吗？", ""),
        (3, 2, "宠物能带进营业厅吗", ""),
        (4, 3, "how do I fly a kite", ""),
    ]
    cl = wanted.cluster(rows)
    assert cl[0].n_askers == 2 and cl[0].count == 3
    assert len(cl) == 2


@given(st.lists(st.tuples(st.integers(1, 5), st.text(max_size=20)), max_size=30))
@hsettings(max_examples=50, deadline=None)
def test_wanted_clusters_partition_all_questions(data):
    rows = [(i, m, t, "") for i, (m, t) in enumerate(data)]
    cl = wanted.cluster(rows)
    ids = sorted(i for c in cl for i in c.ids)
    from bot.core.normalize import normalize

    assert ids == [i for i, _m, t, _n in rows if normalize(t)]
    assert all(c.n_askers <= c.count for c in cl)


async def test_xlsx_import_reports_lines(client, tmp_path):
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.append(["key", "locale", "title", "variants", "answer", "difficulty"])
    ws.append(["x-1", "zh_CN", "怎么开发票", "发票|开票", "在 App 里申请电子发票。", 2])
    ws.append(["x-2", "xx", "坏行", "", "答案", 1])
    path = tmp_path / "kb.xlsx"
    wb.save(path)
    rows = parse_file(path)
    assert [ln for ln, _r in rows] == [2, 3]
    report = await import_rows(rows)
    assert report.created == 1 and report.rejected[0][0] == 3
    item = await KnowledgeItem.get(key="x-1")
    assert item.variants == ["发票", "开票"] and item.difficulty == 2
    bad = tmp_path / "bad.xlsx"
    bad.write_bytes(b"not a zip")
    assert isinstance(parse_file(bad)[0][1], str)


async def test_notices_command(client):
    item = await KnowledgeItem.filter(status="published", locale="zh_CN").first()
    item.is_notice = True
    await item.save()
    replies = await chat(client, "m9", text="公告")
    assert item.title in replies[0]["text"]
    assert re.search(r"\S", replies[0]["text"])
