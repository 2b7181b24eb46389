"""``/staff/review`` in the app: who sees which kinds, filters, CSRF, notes, the audit, and
the staff home's link."""

from __future__ import annotations

from bot.core.app_keys import SERVICES
from bot.core.models import Member
from bot.staff.models import StaffAudit
from community.knowledge_admin import service as knowledge
from community.knowledge_admin.models import KnowledgeContribution
from community.moderation import service as moderation
from community.moderation.matcher import Verdict
from community.moderation.models import ReviewItem
from community.models import KnowledgeItem
from community.review.models import Kind, Reviewable, Status
from gamification import rewards
from gamification.models import Redemption, Reward
from tests.community_helpers import csrf, staff_login


async def waiting_items(client) -> tuple[ReviewItem, KnowledgeContribution, Redemption]:  # type: ignore[no-untyped-def]
    services = client.app[SERVICES]
    m = await Member.create(display_name="小李")
    held = await moderation.record(
        services,
        Verdict("hold", "明天全城停网"),
        member_id=m.id,
        content_type="question",
        content_id=None,
        text="明天全城停网",
    )
    contrib = await knowledge.contribute(m.id, "web", "营业厅几点关门\n晚上九点")
    reward = await Reward.create(name="雨伞", kind="gift", cost=10, stock=3)
    order = await Redemption.create(member=m, reward=reward, cost=10, request_key="w1", status="pending")
    order = await rewards.fulfil(order, None, "")
    assert held is not None and order.status == "queued"
    return held, contrib, order


async def test_reviewer_filters_and_decides_with_csrf_and_audit(client) -> None:  # type: ignore[no-untyped-def]
    held, contrib, order = await waiting_items(client)
    await staff_login(client, "agent1", ["agent"])
    assert (await client.get("/staff/review", allow_redirects=False)).status == 403

    await staff_login(client, "rev", ["reviewer"])
    home = await (await client.get("/staff")).text()
    assert 'href="/staff/review"' in home
    html, token = await csrf(client, "/staff/review")
    assert "明天全城停网" in html and "营业厅几点关门" in html
    assert "雨伞" not in html  # reward orders are for admins, as on /admin/rewards
    only = await (await client.get("/staff/review?kind=contribution")).text()
    assert "营业厅几点关门" in only and "明天全城停网" not in only

    r_held = await Reviewable.get(kind=Kind.MODERATION_ITEM, target_id=held.id)
    r_contrib = await Reviewable.get(kind=Kind.CONTRIBUTION, target_id=contrib.id)
    forged = await client.post(f"/staff/review/{r_held.id}", data={"decision": "approve"}, allow_redirects=False)
    assert forged.status == 403
    no_note = await client.post(
        f"/staff/review/{r_held.id}", allow_redirects=False, data={"decision": "reject", "csrf_token": token}
    )
    page = await no_note.text()
    assert no_note.status == 400 and 'id="review-error"' in page and "请填写驳回理由" in page  # zh_CN by default
    assert (await Reviewable.get(id=r_held.id)).status == Status.PENDING

    done = await client.post(
        f"/staff/review/{r_contrib.id}",
        allow_redirects=False,
        data={"decision": "approve", "note": "thanks", "csrf_token": token, "back": "kind=contribution"},
    )
    assert done.status == 303 and done.headers["Location"] == "/staff/review?kind=contribution"
    assert (await KnowledgeContribution.get(id=contrib.id)).status == "approved"
    item = await KnowledgeItem.get(id=contrib.item_id)
    assert item.status == "published"
    assert (await client.app[SERVICES].kb.get(item.id)).title == "营业厅几点关门"  # re-indexed: searchable
    row = await StaffAudit.get(action="review.approved")
    assert (row.username, row.target_type, row.target_id) == ("rev", "KnowledgeContribution", str(contrib.id))

    again = await client.post(
        f"/staff/review/{r_contrib.id}",
        allow_redirects=False,
        data={"decision": "reject", "note": "x", "csrf_token": token},
    )
    assert again.status == 409
    missing = await client.post(
        "/staff/review/999999", allow_redirects=False, data={"decision": "approve", "csrf_token": token}
    )
    assert missing.status == 404

    r_order = await Reviewable.get(kind=Kind.REDEMPTION, target_id=order.id)  # opened when the page was read
    refused = await client.post(
        f"/staff/review/{r_order.id}",
        allow_redirects=False,
        data={"decision": "reject", "note": "no", "csrf_token": token},
    )
    assert refused.status == 403 and (await Redemption.get(id=order.id)).status == "queued"


async def test_admin_sees_every_kind_in_chinese(client) -> None:  # type: ignore[no-untyped-def]
    _held, _contrib, order = await waiting_items(client)
    await staff_login(client, "boss", ["admin"])
    html = await (await client.get("/staff/review?lang=zh_CN")).text()
    assert "审核队列" in html and "雨伞" in html and "手工兑付的奖品订单" in html
    assert "退还积分" in html  # the redemption's reject button says what it does
    zh_tw = await (await client.get("/staff/review?lang=zh_TW")).text()
    assert "審核佇列" in zh_tw
    _html, token = await csrf(client, "/staff/review")
    r = await Reviewable.get(kind=Kind.REDEMPTION, target_id=order.id)
    resp = await client.post(
        f"/staff/review/{r.id}",
        allow_redirects=False,
        data={"decision": "approve", "note": "SF123", "csrf_token": token},
    )
    assert resp.status == 303
    got = await Redemption.get(id=order.id)
    assert (got.status, got.provider_ref) == ("fulfilled", "SF123")
