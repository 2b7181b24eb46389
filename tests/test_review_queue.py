"""The review queue without the app (``sqlite_orm``): each kind's owner opens one pending
review per target, a decision goes through the kind's own service and is audited with it,
and what the system settles outside staff pages (a late top-up callback, a phrasing
auto-accepted at the quorum) leaves the queue."""

from __future__ import annotations

from dataclasses import dataclass, field
from types import SimpleNamespace
from typing import Any

import pytest

from bot.core.events import ContributionApproved, EventBus
from bot.core.i18n import get_translator
from bot.core.models import Member
from bot.staff.models import StaffUser
from community.knowledge_admin import learning
from community.knowledge_admin import service as knowledge
from community.knowledge_admin.models import CandidateVariant, KnowledgeContribution
from community.models import KnowledgeItem
from community.moderation import service as moderation
from community.moderation.matcher import Verdict
from community.moderation.models import ReviewItem
from community.review import service
from community.review.models import Kind, Reviewable, ReviewableAction, Status
from community.review.queue import open_review
from gamification import caps, rewards
from gamification.models import Redemption, ReviewFlag, Reward
from tests.gamification_helpers import standalone

pytestmark = pytest.mark.usefixtures("sqlite_orm")


@dataclass
class RecordingKb:
    """The knowledge service's ``reindex`` as the kinds call it: which items, in order."""

    reindexed: list[int] = field(default_factory=list)

    def reindex(self, items: list[KnowledgeItem]) -> None:
        self.reindexed.extend(i.id for i in items)


@dataclass
class RecordingOutbox:
    """``Outbox.to_member`` as the contribution workflow calls it: (member, text, key)."""

    sent: list[tuple[int, str, str]] = field(default_factory=list)

    async def to_member(self, member_id: int, reply: Any, *, purpose: str, idempotency_key: str) -> None:
        self.sent.append((member_id, reply.text, idempotency_key))


def services(kb: RecordingKb | None = None, quorum: int = 0) -> Any:
    return SimpleNamespace(
        kb=kb or RecordingKb(),
        settings=SimpleNamespace(kb_variant_auto_accept=quorum),
        events=EventBus(),
        translator=get_translator(),
        outbox=RecordingOutbox(),
    )


async def staff(username: str, *roles: str) -> StaffUser:
    return await StaffUser.create(username=username, password_hash="-", roles=list(roles))


async def held(text: str = "听说明天全网停机", member: Member | None = None) -> ReviewItem:
    member = member or await Member.create(display_name="m")
    item = await moderation.record(
        services(), Verdict("hold", text), member_id=member.id, content_type="question", content_id=None, text=text
    )
    assert item is not None
    return item


async def test_open_review_is_idempotent_per_kind_and_target_while_pending() -> None:
    item = await held()
    first = await Reviewable.get(kind=Kind.MODERATION_ITEM, target_id=item.id)
    again = await open_review(Kind.MODERATION_ITEM, item, "hold")
    assert again.id == first.id
    assert await Reviewable.filter(kind=Kind.MODERATION_ITEM, target_id=item.id).count() == 1
    assert first.status == Status.PENDING and first.summary == "听说明天全网停机" and first.reason == "hold"
    assert [a.action for a in await ReviewableAction.filter(reviewable_id=first.id)] == ["open"]
    with pytest.raises(TypeError):
        await open_review(Kind.REDEMPTION, item)  # a redemption review must point at a Redemption


async def test_moderation_item_approve_and_reject_through_moderation_service() -> None:
    reviewer = await staff("rev", "reviewer")
    ok, bad = await held("第一条"), await held("第二条")
    r_ok = await Reviewable.get(kind=Kind.MODERATION_ITEM, target_id=ok.id)
    r_bad = await Reviewable.get(kind=Kind.MODERATION_ITEM, target_id=bad.id)
    with pytest.raises(service.ReviewError):  # moderation asks a reason for rejecting
        await service.decide(r_bad, "reject", reviewer, "")
    assert (await Reviewable.get(id=r_bad.id)).status == Status.PENDING

    done = await service.decide(r_ok, "approve", reviewer, "fine")
    assert done.status == Status.APPROVED and done.reviewed_by_id == reviewer.id and done.reviewed_at
    assert done.pending_key is None
    item = await ReviewItem.get(id=ok.id)
    assert (item.status, item.reviewer, item.reason) == ("approved", "rev", "fine")
    await service.decide(r_bad.id, "reject", reviewer, "rumour")
    assert (await ReviewItem.get(id=bad.id)).status == "rejected"
    audit = await ReviewableAction.filter(reviewable_id=r_bad.id).order_by("id")
    assert [(a.action, a.actor, a.staff_id, a.note) for a in audit][1:] == [
        ("reject", "staff:rev", reviewer.id, "rumour")
    ]

    with pytest.raises(service.AlreadyDecided):  # once only, whoever comes second
        await service.decide(r_ok, "reject", reviewer, "changed my mind")
    assert (await ReviewItem.get(id=ok.id)).status == "approved"


async def test_flags_and_redemptions_need_an_admin() -> None:
    member = await Member.create()
    assert await caps.flag(member.id, "ring", "ring:1:2", {"members": [1, 2]})
    assert await service.open_discovered() == 1
    r = await Reviewable.get(kind=Kind.MODERATION_FLAG)
    reviewer, admin = await staff("rev", "reviewer"), await staff("boss", "admin")
    assert Kind.MODERATION_FLAG not in service.kinds_for(reviewer)
    assert set(service.kinds_for(admin)) == set(Kind)
    with pytest.raises(service.NotAllowed):
        await service.decide(r, "approve", reviewer)
    assert (await ReviewFlag.get(id=r.target_id)).status == "open"
    assert await service.listing(reviewer, service.Filters()) == []
    assert [x.id for x in await service.listing(admin, service.Filters())] == [r.id]


async def test_flag_confirm_and_clear_through_gamification() -> None:
    a, b = await Member.create(), await Member.create()
    admin = await staff("boss", "admin")
    await caps.flag(a.id, "ring", "ring:a", {})
    await caps.flag(b.id, "credibility", "credibility:b", {})
    assert not await caps.flag(a.id, "ring", "ring:a", {})  # one flag per cause
    assert await service.open_discovered() == 2
    assert await service.open_discovered() == 0  # one review per flag, however often the queue is read
    ra = await Reviewable.get(kind=Kind.MODERATION_FLAG, created_by_id=a.id)
    rb = await Reviewable.get(kind=Kind.MODERATION_FLAG, created_by_id=b.id)
    flag_a = await ReviewFlag.get(id=ra.target_id)
    assert ra.created_at == flag_a.created_at  # waiting since the flag, not since the queue noticed it
    assert ra.reason == "ring" and await Reviewable.filter(kind=Kind.MODERATION_FLAG).count() == 2
    # paying out or forfeiting goes through the app's gamification: without it, nothing is decided
    with pytest.raises(service.ReviewError):
        await service.decide(ra, "reject", admin, "confirmed ring")
    assert (await Reviewable.get(id=ra.id)).status == Status.PENDING
    assert (await ReviewFlag.get(id=ra.target_id)).status == "open"
    gam = standalone()
    await service.decide(ra, "reject", admin, "confirmed ring", gamification=gam)
    await service.decide(rb, "approve", admin, gamification=gam)
    assert (await ReviewFlag.get(id=ra.target_id)).status == "confirmed"
    assert (await ReviewFlag.get(id=rb.target_id)).status == "cleared"
    assert not await caps.has_open_flag(a.id)


async def test_contribution_approve_publishes_through_the_knowledge_workflow() -> None:
    member = await Member.create(display_name="c")
    reviewer = await staff("rev", "reviewer")
    c = await knowledge.contribute(member.id, "web", "怎么查话费\n发送 CXHF 到 10086")
    r = await Reviewable.get(kind=Kind.CONTRIBUTION, target_id=c.id)
    assert r.created_by_id == member.id and r.summary.startswith("怎么查话费")
    kb = RecordingKb()
    svc = services(kb)
    published: list[ContributionApproved] = []

    async def record(e: ContributionApproved) -> None:
        published.append(e)

    svc.events.subscribe(ContributionApproved, record)
    await service.decide(r, "approve", reviewer, "thanks", services=svc)
    assert (await KnowledgeContribution.get(id=c.id)).status == "approved"
    # points are gamification's subscriber's; the member is told on their channel
    assert published == [ContributionApproved(contribution_id=c.id, member_id=member.id)]
    assert [(m, key) for m, _text, key in svc.outbox.sent] == [(member.id, f"kbcontrib:{c.id}:approved")]
    item = await KnowledgeItem.get(id=c.item_id)
    assert item.status == "published" and kb.reindexed == [item.id]
    assert (await service.pages_of([r]))[r.id] == f"/admin/knowledge/{item.id}"


async def test_contribution_reject_needs_a_reason_and_tells_the_workflow() -> None:
    member = await Member.create()
    reviewer = await staff("rev", "reviewer")
    c = await knowledge.contribute(member.id, "web", "乱写的\n内容")
    r = await Reviewable.get(kind=Kind.CONTRIBUTION, target_id=c.id)
    with pytest.raises(service.ReviewError):
        await service.decide(r, "reject", reviewer, "  ")
    await service.decide(r, "reject", reviewer, "not accurate")
    assert (await KnowledgeContribution.get(id=c.id)).status == "rejected"
    assert (await KnowledgeItem.get(id=c.item_id)).status == "draft"


async def test_candidate_variant_accept_adds_the_phrasing() -> None:
    item = await KnowledgeItem.create(key="bill", title="查询话费", answer="发送 CXHF", status="published")
    member = await Member.create()
    reviewer = await staff("rev", "reviewer")
    svc = services()
    cv = await learning.suggest_variant(svc, item.id, "话费怎么查", "pick", member.id)
    assert cv is not None
    await learning.suggest_variant(svc, item.id, "话费怎么查", "ticket", None)  # a second vote: same review
    r = await Reviewable.get(kind=Kind.CANDIDATE_VARIANT, target_id=cv.id)
    assert await Reviewable.filter(kind=Kind.CANDIDATE_VARIANT).count() == 1
    await service.decide(r, "approve", reviewer, services=svc)
    assert (await CandidateVariant.get(id=cv.id)).status == "accepted"
    assert "话费怎么查" in (await KnowledgeItem.get(id=item.id)).variants
    assert svc.kb.reindexed == [item.id]


async def test_auto_accepted_variant_opens_no_review() -> None:
    item = await KnowledgeItem.create(key="pk", title="套餐", answer="...", status="published")
    cv = await learning.suggest_variant(services(quorum=1), item.id, "换套餐", "pick", 7)
    assert cv is not None and cv.status == "accepted"
    assert not await Reviewable.filter(kind=Kind.CANDIDATE_VARIANT).exists()


async def redemption_in_manual_queue(stock: int = 3) -> tuple[Redemption, Reward]:
    member = await Member.create()
    reward = await Reward.create(name="10元话费", kind="topup", cost=50, stock=stock, face_value=10)
    r = await Redemption.create(
        member=member, reward=reward, cost=50, request_key=f"k{member.id}", phone="+8613900000000"
    )
    queued = await rewards.fulfil(r, None, "")  # no provider: staff fulfil by hand
    assert queued.status == "queued"
    assert await service.open_discovered([Kind.REDEMPTION]) == 1
    return queued, reward


async def test_redemption_fulfil_and_refund_through_rewards() -> None:
    admin = await staff("boss", "admin")
    done, _ = await redemption_in_manual_queue()
    refund, reward = await redemption_in_manual_queue()
    r_done = await Reviewable.get(kind=Kind.REDEMPTION, target_id=done.id)
    r_refund = await Reviewable.get(kind=Kind.REDEMPTION, target_id=refund.id)
    assert r_done.summary == "10元话费" and r_done.reason == "topup"
    await service.decide(r_done, "approve", admin, "REF-1")
    await service.decide(r_refund, "reject", admin, "number unreachable")
    fulfilled = await Redemption.get(id=done.id)
    assert (fulfilled.status, fulfilled.provider_ref) == ("fulfilled", "REF-1")
    failed = await Redemption.get(id=refund.id)
    assert failed.status == "failed" and "staff boss: number unreachable" in failed.note
    assert (await Reward.get(id=reward.id)).stock == 4  # the refund put the stock back


async def test_target_settled_elsewhere_is_ignored_not_decided_twice() -> None:
    admin = await staff("boss", "admin")
    red, _ = await redemption_in_manual_queue()
    late, _ = await redemption_in_manual_queue()
    r_red = await Reviewable.get(kind=Kind.REDEMPTION, target_id=red.id)
    assert await rewards.complete(red.id, "from the provider")  # the callback came late after all
    got = await service.decide(r_red, "reject", admin, "refund")
    assert got.status == Status.IGNORED
    assert (await Redemption.get(id=red.id)).status == "fulfilled"  # no refund of a delivered top-up
    assert (await ReviewableAction.filter(reviewable_id=r_red.id).order_by("-id").first()).action == "ignore"

    assert await rewards.fail(late.id, "provider: failed")  # a late callback: no staff page involved
    item = await KnowledgeItem.create(key="pk", title="套餐", answer="...", status="published")
    cv = await learning.suggest_variant(services(quorum=2), item.id, "换套餐", "pick", 7)
    assert cv is not None and cv.status == "candidate"  # one vote: its review is open
    assert (await learning.suggest_variant(services(quorum=2), item.id, "换套餐", "pick", 8)).status == "accepted"
    await service.refresh()
    assert await service.settle_stale() == 0  # refresh settled them already
    for kind, target in ((Kind.REDEMPTION, late.id), (Kind.CANDIDATE_VARIANT, cv.id)):
        r_other = await Reviewable.get(kind=kind, target_id=target)
        assert r_other.status == Status.IGNORED and r_other.pending_key is None
    assert await service.listing(admin, service.Filters()) == []


async def test_failing_kind_code_leaves_the_review_pending_and_unaudited() -> None:
    reviewer = await staff("rev", "reviewer")
    item = await KnowledgeItem.create(key="x", title="标题", answer="答", status="published")
    cv = await learning.suggest_variant(services(), item.id, "别的问法", "pick", 1)
    r = await Reviewable.get(kind=Kind.CANDIDATE_VARIANT, target_id=cv.id)
    with pytest.raises(service.ReviewError):  # accepting needs the knowledge service
        await service.decide(r, "approve", reviewer, services=None)
    after = await Reviewable.get(id=r.id)
    assert after.status == Status.PENDING and after.pending_key is not None
    assert [a.action for a in await ReviewableAction.filter(reviewable_id=r.id)] == ["open"]
    assert (await CandidateVariant.get(id=cv.id)).status == "candidate"


async def test_listing_filters_by_kind_status_and_age() -> None:
    admin = await staff("boss", "admin")
    a, b = await held("一"), await held("二")
    red, _ = await redemption_in_manual_queue()
    ra = await Reviewable.get(kind=Kind.MODERATION_ITEM, target_id=a.id)
    old = ra.created_at.replace(year=ra.created_at.year - 1)
    await Reviewable.filter(id=ra.id).update(created_at=old)
    rows = await service.listing(admin, service.Filters())
    assert [x.kind for x in rows][0] == Kind.MODERATION_ITEM and rows[0].id == ra.id  # oldest first
    assert {x.kind for x in await service.listing(admin, service.Filters(kind="redemption"))} == {Kind.REDEMPTION}
    assert [x.id for x in await service.listing(admin, service.Filters(older_than=24))] == [ra.id]
    await service.decide(ra, "approve", admin)
    assert [x.id for x in await service.listing(admin, service.Filters(status="approved"))] == [ra.id]
    assert len(await service.listing(admin, service.Filters(status="all"))) == 3
    f = service.parse_filters({"kind": "nope", "status": "weird", "age": "5"})
    assert f == service.Filters()
    assert b and red


async def test_decide_target_opens_a_missing_review_once_and_refuses_what_no_longer_waits() -> None:
    """The kinds' own pages name the target: its review is found, or opened first (an order
    the queue page has not discovered yet), and decided through ``decide``."""
    admin, reviewer = await staff("boss", "admin"), await staff("rev", "reviewer")
    member = await Member.create()
    reward = await Reward.create(name="雨伞", kind="gift", cost=10, stock=3)
    order = await Redemption.create(member=member, reward=reward, cost=10, request_key="dt1", status="queued")
    with pytest.raises(service.NotAllowed):  # a reviewer cannot, and nothing is opened for them
        await service.decide_target(Kind.REDEMPTION, order.id, "approve", reviewer)
    assert not await Reviewable.exists(kind=Kind.REDEMPTION, target_id=order.id)
    with pytest.raises(service.NotFound):
        await service.decide_target(Kind.REDEMPTION, 999_999, "approve", admin)

    done = await service.decide_target(Kind.REDEMPTION, order.id, "approve", admin, "SF9")
    assert (done.status, done.reviewed_by_id, done.summary) == (Status.APPROVED, admin.id, "雨伞")
    assert [a.action for a in await ReviewableAction.filter(reviewable_id=done.id).order_by("id")] == [
        "open",
        "approve",
    ]
    assert (await Redemption.get(id=order.id)).status == "fulfilled"
    with pytest.raises(service.AlreadyDecided):  # decided: nothing opens again
        await service.decide_target(Kind.REDEMPTION, order.id, "reject", admin, "refund")
    assert await Reviewable.filter(kind=Kind.REDEMPTION, target_id=order.id).count() == 1
    assert (await Redemption.get(id=order.id)).status == "fulfilled"


async def test_decide_target_on_a_target_settled_elsewhere_is_already_decided() -> None:
    """The top-up provider's late callback settled the order while its review waited: the
    page's decision is refused as already decided, audited as ``ignore``, nothing refunded."""
    admin = await staff("boss", "admin")
    red, reward = await redemption_in_manual_queue()
    assert await rewards.complete(red.id, "from the provider")
    with pytest.raises(service.AlreadyDecided):
        await service.decide_target(Kind.REDEMPTION, red.id, "reject", admin, "refund")
    r = await Reviewable.get(kind=Kind.REDEMPTION, target_id=red.id)
    assert r.status == Status.IGNORED and r.pending_key is None
    assert (await ReviewableAction.filter(reviewable_id=r.id).order_by("-id").first()).action == "ignore"
    assert (await Redemption.get(id=red.id)).status == "fulfilled"
    assert (await Reward.get(id=reward.id)).stock == 3  # no refund: a refund puts one back
