"""One decision path: the kinds' own staff pages (``/admin/moderation``, ``/admin/knowledge``,
``/admin/rewards``) decide through the review queue, so a decision on either page leaves the
``Reviewable`` decided at once with one audit row naming the staff member, ``/staff/review``
stops listing it, and a second decision on the other page is refused with nothing applied twice.

Each of the five kinds: old page then queue, and queue then old page."""

from __future__ import annotations

from typing import Any

from bot.core.app_keys import SERVICES
from bot.core.models import ChannelAccount, Member, OutboxMessage
from bot.staff.models import StaffUser
from community.knowledge_admin import learning
from community.knowledge_admin import service as knowledge
from community.knowledge_admin.models import CandidateVariant, KnowledgeContribution, KnowledgeVersion
from community.moderation import service as moderation
from community.moderation.matcher import Verdict
from community.moderation.models import ModerationAudit, ReviewItem
from community.models import KnowledgeItem
from community.review.models import Kind, Reviewable, ReviewableAction, Status
from gamification import caps, ledger, rewards
from gamification.service import GAMIFICATION, Gamification
from gamification.models import LedgerEntry, Redemption, ReviewFlag, Reward
from tests.community_helpers import csrf, staff_login
from tests.trust_helpers import trusted_member

ALREADY = "这条事项已由他人处理。"  # "Someone else already decided this item." in zh_CN, the staff default


async def decided_once(kind: Kind, target_id: int, status: Status, username: str) -> Reviewable:
    """The target's one review, decided by ``username`` with one audit row saying so."""
    rows = await Reviewable.filter(kind=kind, target_id=target_id)
    assert len(rows) == 1, f"one review per target, found {len(rows)}"
    r = rows[0]
    staff = await StaffUser.get(username=username)
    assert (r.status, r.reviewed_by_id, r.pending_key) == (status, staff.id, None)
    assert r.reviewed_at is not None
    decisions = await ReviewableAction.filter(reviewable_id=r.id).exclude(action="open")
    action = "approve" if status == Status.APPROVED else "reject"
    assert [(a.action, a.actor, a.staff_id) for a in decisions] == [(action, f"staff:{username}", staff.id)]
    return r


async def not_listed(client: Any, r: Reviewable) -> None:
    """``/staff/review`` (pending, every kind the reader may decide) no longer shows it."""
    html = await (await client.get("/staff/review")).text()
    assert 'id="review-rows"' in html and f'id="review-{r.id}"' not in html


async def queue_post(client: Any, r: Reviewable, token: str, decision: str, note: str = "x") -> Any:
    return await client.post(
        f"/staff/review/{r.id}",
        allow_redirects=False,
        data={"decision": decision, "note": note, "csrf_token": token},
    )


async def queue_decide(client: Any, kind: Kind, target_id: int, decision: str, note: str = "ok") -> Reviewable:
    _html, token = await csrf(client, "/staff/review")  # reading the queue opens discovered kinds
    r = await Reviewable.get(kind=kind, target_id=target_id, status=Status.PENDING)
    assert (await queue_post(client, r, token, decision, note)).status == 303
    return r


# --- held content: /admin/moderation --------------------------------------------------------------
async def held(client: Any, text: str) -> ReviewItem:
    m = await Member.create(display_name="小张")
    item = await moderation.record(
        client.app[SERVICES], Verdict("hold", text), member_id=m.id, content_type="question", content_id=None, text=text
    )
    assert item is not None
    return item


async def staff_decisions(item: ReviewItem) -> int:
    """Moderation's own audit of staff decisions on the item's member (one member per item)."""
    return await ModerationAudit.filter(
        actor__startswith="staff:", action__in=("approved", "rejected"), member_id=item.member_id
    ).count()


async def held_points(member_id: int) -> tuple[int, int]:
    bal = await ledger.balance_of(member_id)
    return bal.balance, bal.held


async def test_moderation_page_then_queue(client) -> None:  # type: ignore[no-untyped-def]
    item = await held(client, "明天全城停水")
    await staff_login(client, "rev", ["reviewer"])
    _html, token = await csrf(client, "/admin/moderation")
    done = await client.post(
        f"/admin/moderation/items/{item.id}",
        allow_redirects=False,
        data={"decision": "reject", "reason": "谣言", "csrf_token": token},
    )
    assert done.status == 303 and done.headers["Location"] == "/admin/moderation"
    r = await decided_once(Kind.MODERATION_ITEM, item.id, Status.REJECTED, "rev")
    assert (await ReviewItem.get(id=item.id)).status == "rejected"
    await not_listed(client, r)

    _html, token = await csrf(client, "/staff/review")
    assert (await queue_post(client, r, token, "approve")).status == 409
    assert (await ReviewItem.get(id=item.id)).status == "rejected" and await staff_decisions(item) == 1
    await decided_once(Kind.MODERATION_ITEM, item.id, Status.REJECTED, "rev")


async def test_queue_then_moderation_page(client) -> None:  # type: ignore[no-untyped-def]
    item = await held(client, "明天全城停电")
    await staff_login(client, "rev", ["reviewer"])
    await queue_decide(client, Kind.MODERATION_ITEM, item.id, "approve")
    _html, token = await csrf(client, "/admin/moderation")
    again = await client.post(
        f"/admin/moderation/items/{item.id}",
        allow_redirects=False,
        data={"decision": "reject", "reason": "改主意", "csrf_token": token},
    )
    assert again.status == 409 and ALREADY in await again.text()
    assert (await ReviewItem.get(id=item.id)).status == "approved" and await staff_decisions(item) == 1
    await decided_once(Kind.MODERATION_ITEM, item.id, Status.APPROVED, "rev")


# --- member flags: /admin/rewards -----------------------------------------------------------------
async def flagged_with_held_points(points: Gamification, reason: str, n: int) -> ReviewFlag:
    """A member under an open flag with points held for that review (``points``: the app's)."""
    member = await Member.create()
    assert await caps.flag(member.id, reason, f"{reason}:{member.id}", {})
    await points.award(member.id, "answer_accepted", f"answer:{9000 + n}", counterpart_id=(await Member.create()).id)
    balance, held_now = await held_points(member.id)
    assert held_now > 0 and balance == 0
    return await ReviewFlag.get(member_id=member.id)


async def test_flag_page_then_queue(client) -> None:  # type: ignore[no-untyped-def]
    flag = await flagged_with_held_points(client.app[GAMIFICATION], "ring", 1)
    await staff_login(client, "boss", ["admin"])
    _html, token = await csrf(client, "/admin/rewards")  # no review yet: the page opens one
    assert not await Reviewable.exists(kind=Kind.MODERATION_FLAG, target_id=flag.id)
    done = await client.post(
        f"/admin/flags/{flag.id}", allow_redirects=False, data={"csrf_token": token, "action": "confirmed"}
    )
    assert done.status == 303 and done.headers["Location"] == "/admin/rewards"
    r = await decided_once(Kind.MODERATION_FLAG, flag.id, Status.REJECTED, "boss")
    assert (await ReviewFlag.get(id=flag.id)).status == "confirmed"
    forfeited = await LedgerEntry.filter(member_id=flag.member_id, event="reversal").count()
    assert forfeited >= 1 and await held_points(flag.member_id) == (0, 0)
    await not_listed(client, r)

    _html, token = await csrf(client, "/staff/review")
    assert (await queue_post(client, r, token, "approve")).status == 409  # no release of forfeited points
    assert (await ReviewFlag.get(id=flag.id)).status == "confirmed"
    assert await LedgerEntry.filter(member_id=flag.member_id, event="reversal").count() == forfeited
    assert await held_points(flag.member_id) == (0, 0)


async def test_queue_then_flag_page(client) -> None:  # type: ignore[no-untyped-def]
    flag = await flagged_with_held_points(client.app[GAMIFICATION], "ring", 2)
    await staff_login(client, "boss", ["admin"])
    await queue_decide(client, Kind.MODERATION_FLAG, flag.id, "approve")  # cleared: the held points are paid
    paid, still_held = await held_points(flag.member_id)
    assert paid > 0 and still_held == 0
    entries = await LedgerEntry.filter(member_id=flag.member_id).count()
    _html, token = await csrf(client, "/admin/rewards")
    again = await client.post(
        f"/admin/flags/{flag.id}", allow_redirects=False, data={"csrf_token": token, "action": "confirmed"}
    )
    assert again.status == 409 and ALREADY in await again.text()
    assert (await ReviewFlag.get(id=flag.id)).status == "cleared"
    assert await LedgerEntry.filter(member_id=flag.member_id).count() == entries
    await decided_once(Kind.MODERATION_FLAG, flag.id, Status.APPROVED, "boss")


# --- member contributions: /admin/knowledge/versions/<id>/<verdict> ------------------------------
async def contribution(text: str) -> tuple[KnowledgeContribution, KnowledgeVersion]:
    member = await Member.create(display_name="贡献者", locale="zh_CN")
    await ChannelAccount.create(member=member, channel="web", external_id=f"contributor-{member.id}")
    c = await knowledge.contribute(member.id, "web", text)
    return c, await KnowledgeVersion.get(contribution_id=c.id)


async def paid_and_told(c: KnowledgeContribution) -> tuple[int, int]:
    """(contribution points awarded, approval notices queued) for the contributor."""
    awarded = await LedgerEntry.filter(member_id=c.member_id, event="contribution_approved").count()
    told = await OutboxMessage.filter(idempotency_key=f"kbcontrib:{c.id}:approved").count()
    return awarded, told


async def test_contribution_page_then_queue(client) -> None:  # type: ignore[no-untyped-def]
    c, v = await contribution("营业厅周日开门吗\n周日 9:00-17:00 营业。")
    await staff_login(client, "rev", ["reviewer"])
    _html, token = await csrf(client, f"/admin/knowledge/{v.item_id}")
    done = await client.post(
        f"/admin/knowledge/versions/{v.id}/approve",
        allow_redirects=False,
        data={"csrf_token": token, "reason": "好"},
    )
    assert done.status == 302 and done.headers["Location"] == f"/admin/knowledge/{v.item_id}"
    r = await decided_once(Kind.CONTRIBUTION, c.id, Status.APPROVED, "rev")
    assert (await KnowledgeContribution.get(id=c.id)).status == "approved"
    assert (await KnowledgeItem.get(id=v.item_id)).status == "published"
    assert await paid_and_told(c) == (1, 1)
    await not_listed(client, r)

    _html, token = await csrf(client, "/staff/review")
    assert (await queue_post(client, r, token, "reject", "不准确")).status == 409
    assert (await KnowledgeContribution.get(id=c.id)).status == "approved"
    assert (await KnowledgeVersion.get(id=v.id)).state == "published"
    assert await paid_and_told(c) == (1, 1)


async def test_queue_then_contribution_page(client) -> None:  # type: ignore[no-untyped-def]
    c, v = await contribution("宽带报修电话\n拨打 10000 转 2。")
    await staff_login(client, "rev", ["reviewer"])
    await queue_decide(client, Kind.CONTRIBUTION, c.id, "approve")
    assert await paid_and_told(c) == (1, 1)
    _html, token = await csrf(client, f"/admin/knowledge/{v.item_id}")
    again = await client.post(
        f"/admin/knowledge/versions/{v.id}/approve", allow_redirects=False, data={"csrf_token": token}
    )
    assert again.status == 409 and ALREADY in await again.text()
    assert await paid_and_told(c) == (1, 1)
    await decided_once(Kind.CONTRIBUTION, c.id, Status.APPROVED, "rev")


# --- learned phrasings: /admin/knowledge/candidates/<id>/<verdict> --------------------------------
async def candidate(client: Any, text: str) -> tuple[CandidateVariant, KnowledgeItem]:
    item = await KnowledgeItem.filter(status="published").order_by("id").first()
    assert item is not None
    cv = await learning.suggest_variant(client.app[SERVICES], item.id, text, "pick", (await Member.create()).id)
    assert cv is not None and cv.status == "candidate"
    return cv, item


async def test_candidate_page_then_queue(client) -> None:  # type: ignore[no-untyped-def]
    cv, item = await candidate(client, "宽带坏了找谁修呀")
    await staff_login(client, "rev", ["reviewer"])
    _html, token = await csrf(client, "/admin/knowledge/candidates")
    done = await client.post(
        f"/admin/knowledge/candidates/{cv.id}/accept",
        allow_redirects=False,
        data={"csrf_token": token},
        headers={"Referer": str(client.make_url("/admin/knowledge/candidates"))},
    )
    assert done.status == 302 and done.headers["Location"] == "/admin/knowledge/candidates"
    r = await decided_once(Kind.CANDIDATE_VARIANT, cv.id, Status.APPROVED, "rev")
    assert (await CandidateVariant.get(id=cv.id)).status == "accepted"
    assert (await KnowledgeItem.get(id=item.id)).variants.count("宽带坏了找谁修呀") == 1
    await not_listed(client, r)

    _html, token = await csrf(client, "/staff/review")
    assert (await queue_post(client, r, token, "reject")).status == 409
    assert (await CandidateVariant.get(id=cv.id)).status == "accepted"


async def test_queue_then_candidate_page(client) -> None:  # type: ignore[no-untyped-def]
    cv, item = await candidate(client, "网断了咋整")
    await staff_login(client, "rev", ["reviewer"])
    await queue_decide(client, Kind.CANDIDATE_VARIANT, cv.id, "reject")
    _html, token = await csrf(client, "/admin/knowledge/candidates")
    again = await client.post(
        f"/admin/knowledge/candidates/{cv.id}/accept", allow_redirects=False, data={"csrf_token": token}
    )
    assert again.status == 409 and ALREADY in await again.text()
    assert (await CandidateVariant.get(id=cv.id)).status == "rejected"
    assert "网断了咋整" not in (await KnowledgeItem.get(id=item.id)).variants
    await decided_once(Kind.CANDIDATE_VARIANT, cv.id, Status.REJECTED, "rev")


# --- reward orders in the manual queue: /admin/redemptions/<id> -----------------------------------
async def manual_order(n: int) -> tuple[Redemption, Reward]:
    """A member spent points on a gift waiting for staff to hand it over."""
    member = await trusted_member(level=2)
    await ledger.award(member.id, "answer_accepted", 100, key=f"seed:{n}")
    reward = await Reward.create(name=f"雨伞{n}", kind="gift", cost=40, stock=5)
    order = await rewards.fulfil(await rewards.redeem(member.id, reward.id, request_key=f"gift-{n}"), None, "")
    assert order.status == "queued" and (await ledger.balance_of(member.id)).balance == 60
    return order, reward


async def refunded(order: Redemption, reward: Reward) -> tuple[int, int, int]:
    """(refunds, balance, stock) after staff decided the order."""
    reversals = await LedgerEntry.filter(member_id=order.member_id, event="reversal").count()
    return reversals, (await ledger.balance_of(order.member_id)).balance, (await Reward.get(id=reward.id)).stock


async def test_redemption_page_then_queue(client) -> None:  # type: ignore[no-untyped-def]
    order, reward = await manual_order(1)
    await staff_login(client, "boss", ["admin"])
    _html, token = await csrf(client, "/admin/rewards")  # no review yet: the page opens one
    assert not await Reviewable.exists(kind=Kind.REDEMPTION, target_id=order.id)
    done = await client.post(
        f"/admin/redemptions/{order.id}",
        allow_redirects=False,
        data={"csrf_token": token, "action": "failed", "note": "缺货"},
    )
    assert done.status == 303 and done.headers["Location"] == "/admin/rewards"
    r = await decided_once(Kind.REDEMPTION, order.id, Status.REJECTED, "boss")
    got = await Redemption.get(id=order.id)
    assert got.status == "failed" and got.note == "staff boss: 缺货"
    assert await refunded(order, reward) == (1, 100, 5)  # the points and the stock came back
    await not_listed(client, r)

    _html, token = await csrf(client, "/staff/review")
    assert (await queue_post(client, r, token, "reject", "again")).status == 409
    assert await refunded(order, reward) == (1, 100, 5)  # refunded once


async def test_queue_then_redemption_page(client) -> None:  # type: ignore[no-untyped-def]
    order, reward = await manual_order(2)
    await staff_login(client, "boss", ["admin"])
    await queue_decide(client, Kind.REDEMPTION, order.id, "reject", "缺货")
    assert await refunded(order, reward) == (1, 100, 5)
    _html, token = await csrf(client, "/admin/rewards")
    for action in ("failed", "fulfilled"):
        again = await client.post(
            f"/admin/redemptions/{order.id}",
            allow_redirects=False,
            data={"csrf_token": token, "action": action, "note": "x", "ref": "SF1"},
        )
        assert again.status == 409 and ALREADY in await again.text()
    assert (await Redemption.get(id=order.id)).status == "failed"
    assert await refunded(order, reward) == (1, 100, 5)
    await decided_once(Kind.REDEMPTION, order.id, Status.REJECTED, "boss")


async def test_provider_orders_stay_on_the_rewards_page(client) -> None:  # type: ignore[no-untyped-def]
    """An order still with the top-up provider is no review item: staff settle it as before,
    and no review is opened for it."""
    order, reward = await manual_order(3)
    await Redemption.filter(id=order.id).update(status="submitted")
    await staff_login(client, "boss", ["admin"])
    _html, token = await csrf(client, "/admin/rewards")
    done = await client.post(
        f"/admin/redemptions/{order.id}",
        allow_redirects=False,
        data={"csrf_token": token, "action": "fulfilled", "ref": "SF2"},
    )
    assert done.status == 303
    assert (await Redemption.get(id=order.id)).status == "fulfilled"
    assert not await Reviewable.exists(kind=Kind.REDEMPTION, target_id=order.id)
    assert await refunded(order, reward) == (0, 60, 4)
