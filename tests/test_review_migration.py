"""Migration 0011_review_queue: every row that waited for staff before the queue existed
becomes a pending reviewable, on SQLite and on PostgreSQL, and nothing already decided does."""

from __future__ import annotations

import importlib
from pathlib import Path

from tortoise import Tortoise
from tortoise.migrations.api import migrate as tortoise_migrate

from bot.core import storage
from bot.core.models import Member
from community.knowledge_admin.models import CandidateVariant, KnowledgeContribution
from community.moderation.models import ReviewItem
from community.review.models import Kind, Reviewable, ReviewableAction, Status
from community.review.queue import open_review
from gamification.models import Redemption, ReviewFlag, Reward

BEFORE = "models.0010_badges"


async def _rows_before_the_queue() -> dict[Kind, int]:
    """One waiting and one decided row of each kind; the waiting ids by kind."""
    m = await Member.create(display_name="老王")
    item = await ReviewItem.create(content_type="question", member=m, text="谣言" * 300, action="hold")
    await ReviewItem.create(content_type="answer", member=m, text="ok", action="flag", status="approved")
    flag = await ReviewFlag.create(member=m, reason="ring", key="ring:1:2")
    await ReviewFlag.create(member=m, reason="farm", key="farm:1", status="cleared")
    contrib = await KnowledgeContribution.create(member=m, text="怎么办宽带\n去营业厅")
    await KnowledgeContribution.create(member=m, text="old", status="approved")
    cv = await CandidateVariant.create(item_id=1, text="宽带咋办", normalized="宽带咋办")
    await CandidateVariant.create(item_id=1, text="x", normalized="x", status="accepted")
    gift = await Reward.create(name="雨伞", kind="gift", cost=10, stock=5)
    queued = await Redemption.create(
        member=m, reward=gift, cost=10, request_key="a", status="queued", note="timed out: still processing"
    )
    await Redemption.create(member=m, reward=gift, cost=10, request_key="b", status="fulfilled")
    await Redemption.create(member=m, reward=gift, cost=10, request_key="c", status="submitted")
    return {
        Kind.MODERATION_ITEM: item.id,
        Kind.MODERATION_FLAG: flag.id,
        Kind.CONTRIBUTION: contrib.id,
        Kind.CANDIDATE_VARIANT: cv.id,
        Kind.REDEMPTION: queued.id,
    }


async def _check(url: str) -> None:
    await tortoise_migrate(config=storage.tortoise_config(url), target=BEFORE)
    await Tortoise.close_connections()
    await storage.open_db(url)
    try:
        waiting = await _rows_before_the_queue()
        member = await Member.get(display_name="老王")
    finally:
        await storage.close_db()
    await storage.migrate(url)
    await storage.open_db(url)
    try:
        rows = await Reviewable.all().order_by("id")
        assert {(Kind(r.kind), r.target_id) for r in rows} == set(waiting.items())
        assert all(r.status == Status.PENDING and r.pending_key == f"{r.kind.value}:{r.target_id}" for r in rows)
        by_kind = {Kind(r.kind): r for r in rows}
        assert (
            by_kind[Kind.MODERATION_ITEM].summary == ("谣言" * 250) and by_kind[Kind.MODERATION_ITEM].reason == "hold"
        )
        assert by_kind[Kind.MODERATION_FLAG].created_by_id == member.id
        assert by_kind[Kind.CANDIDATE_VARIANT].created_by_id is None
        assert (by_kind[Kind.REDEMPTION].summary, by_kind[Kind.REDEMPTION].reason) == (
            "雨伞",
            "timed out: still processing",
        )
        assert by_kind[Kind.REDEMPTION].target_type == "Redemption"
        assert await ReviewableAction.filter(action="open").count() == len(rows)
        # the step can run again without opening anything twice
        migration = importlib.import_module("bot.migrations.0011_review_queue")
        conn = Tortoise.get_connection("default")
        for sql in migration.backfill_sql():
            await conn.execute_query(sql)
        assert await Reviewable.all().count() == len(rows)
        assert await ReviewableAction.all().count() == len(rows)
    finally:
        await storage.close_db()


async def test_backfill_opens_a_review_for_every_waiting_row_on_sqlite(tmp_path: Path) -> None:
    await _check(f"sqlite://{tmp_path / 'm.sqlite3'}")


async def test_backfill_on_postgresql(fresh_postgres_url: str) -> None:
    await _check(fresh_postgres_url)


ONE_PATH_BEFORE = "models.0013_outbox_claim_token"


async def _check_one_path(url: str) -> None:
    """0014_review_one_path: reviews the old pages left pending when they decided directly are
    closed (``ignored``, audited), waiting ones stay, and the kinds still settled on read
    (reward orders, phrasings) are left to the queue."""
    await tortoise_migrate(config=storage.tortoise_config(url), target=ONE_PATH_BEFORE)
    await Tortoise.close_connections()
    await storage.open_db(url)
    try:
        m = await Member.create(display_name="老李")
        gift = await Reward.create(name="雨伞", kind="gift", cost=10, stock=5)
        stale = {
            Kind.MODERATION_ITEM: await ReviewItem.create(
                content_type="question", member=m, text="a", action="hold", status="approved"
            ),
            Kind.MODERATION_FLAG: await ReviewFlag.create(member=m, reason="ring", key="ring:9", status="cleared"),
            Kind.CONTRIBUTION: await KnowledgeContribution.create(member=m, text="c", status="rejected"),
        }
        waiting = {
            Kind.MODERATION_ITEM: await ReviewItem.create(content_type="answer", member=m, text="b", action="flag"),
            Kind.MODERATION_FLAG: await ReviewFlag.create(member=m, reason="farm", key="farm:9"),
            Kind.CONTRIBUTION: await KnowledgeContribution.create(member=m, text="d"),
        }
        left = {
            Kind.REDEMPTION: await Redemption.create(
                member=m, reward=gift, cost=10, request_key="z", status="fulfilled"
            ),
            Kind.CANDIDATE_VARIANT: await CandidateVariant.create(
                item_id=1, text="x", normalized="x", status="accepted"
            ),
        }
        for kind, target in [*stale.items(), *waiting.items(), *left.items()]:
            await open_review(kind, target, "before")
    finally:
        await storage.close_db()
    await storage.migrate(url)
    await storage.open_db(url)
    try:
        for kind, target in stale.items():
            r = await Reviewable.get(kind=kind, target_id=target.id)
            assert (r.status, r.pending_key) == (Status.IGNORED, None) and r.reviewed_at is not None
            actions = await ReviewableAction.filter(reviewable_id=r.id).order_by("id")
            assert [(a.action, a.actor) for a in actions] == [("open", "system"), ("ignore", "system")]
        for kind, target in [*waiting.items(), *left.items()]:
            r = await Reviewable.get(kind=kind, target_id=target.id)
            assert r.status == Status.PENDING and r.pending_key is not None
            assert await ReviewableAction.filter(reviewable_id=r.id).count() == 1
        audits = await ReviewableAction.all().count()
        migration = importlib.import_module("bot.migrations.0014_review_one_path")
        conn = Tortoise.get_connection("default")
        for sql in migration.settle_sql():  # a second run settles nothing more
            await conn.execute_query(sql)
        assert await ReviewableAction.all().count() == audits
    finally:
        await storage.close_db()


async def test_one_path_closes_reviews_the_old_pages_left_pending_on_sqlite(tmp_path: Path) -> None:
    await _check_one_path(f"sqlite://{tmp_path / 'p.sqlite3'}")


async def test_one_path_on_postgresql(fresh_postgres_url: str) -> None:
    await _check_one_path(fresh_postgres_url)
