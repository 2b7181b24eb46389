"""The message pipeline in production mode: PostgreSQL + Redis, under concurrency.

The same assertions run on the embedded backends (SQLite + in-process stores) and on
PostgreSQL + Redis: a member's first messages arriving at once create one member, a
retry storm of one message is processed once and every retry gets the same answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import given, strategies as st
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.core.app_keys import SERVICES
from bot.core.models import ChannelAccount, Member, TranscriptEntry
from bot.core.accounts import get_or_create_account
from bot.core.redis_stores import RedisDedupStore
from bot.core.stores import MemoryDedupStore
from tests.conftest import make_settings
from tests.community_helpers import as_member


@pytest.fixture(params=["embedded", "production"])
async def client(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[TestClient]:
    if request.param == "production":
        settings = make_settings(
            tmp_path,
            database_url=request.getfixturevalue("fresh_postgres_url"),
            redis_url=request.getfixturevalue("fresh_redis_url"),
        )
    else:
        settings = make_settings(tmp_path)
    app = create_app(settings, db_setup="schema")
    async with TestClient(TestServer(app)) as c:
        if request.param == "production":
            assert isinstance(app[SERVICES].dedup, RedisDedupStore)
            from tortoise import connections

            assert connections.get("default").capabilities.dialect == "postgres"
        yield c


async def test_first_contact_burst_creates_one_member(client: TestClient) -> None:
    async def send(i: int) -> int:
        r = await client.post("/api/v1/chat", json={**as_member("newbie"), "text": f"你好 {i}", "msg_id": f"n{i}"})
        return r.status

    statuses = await asyncio.gather(*[send(i) for i in range(20)])
    assert statuses == [200] * 20
    assert await ChannelAccount.filter(channel="web", external_id="newbie").count() == 1
    assert await Member.all().count() == 1
    assert await TranscriptEntry.filter(direction="in").count() == 20


async def test_retry_storm_is_processed_once(client: TestClient) -> None:
    body = {**as_member("storm"), "text": "流量怎么查", "msg_id": "same-id"}
    responses = await asyncio.gather(*[client.post("/api/v1/chat", json=body) for _ in range(30)])
    payloads = [await r.json() for r in responses]
    assert [r.status for r in responses] == [200] * 30
    assert await TranscriptEntry.filter(msg_id="storm#same-id", direction="in").count() == 1
    first = payloads[0]["replies"]
    assert first, "the first answer is not empty"
    assert all(p["replies"] == first for p in payloads)  # every retry got the same answer


async def test_retry_after_dedup_store_loss_still_acts_once(client: TestClient) -> None:
    """Dedup keys lost (Redis flushed / expired): the unique transcript row still holds."""
    body = {**as_member("late"), "text": "你好", "msg_id": "late-1"}
    first = await client.post("/api/v1/chat", json=body)
    assert first.status == 200
    services = client.app[SERVICES]
    if isinstance(services.dedup, MemoryDedupStore):  # the dedup keys are lost (a restart)
        services.dedup._claims = type(services.dedup._claims)()
    else:
        await services.dedup.redis.flushdb()
    r = await client.post("/api/v1/chat", json=body)
    assert r.status == 200
    assert await TranscriptEntry.filter(msg_id="late#late-1", direction="in").count() == 1
    # the retry gets the answer recorded with the transcript, not silence
    assert (await r.json())["replies"] == (await first.json())["replies"] != []


async def test_ledger_under_concurrency_awards_once_never_below_zero(client: TestClient) -> None:
    """Row locks on PostgreSQL (select_for_update), the same outcome on SQLite."""
    from gamification import ledger

    account = await get_or_create_account("web", "points-user")
    mid = account.member.id
    awards = await asyncio.gather(*[ledger.award(mid, "answer_accepted", 10, key="award:once") for _ in range(10)])
    assert len({r.entry_id for r in awards}) == 1
    assert (await ledger.balance_of(mid)).balance == 10
    outcomes = await asyncio.gather(*[ledger.spend(mid, 3, key=f"spend:{i}") for i in range(6)], return_exceptions=True)
    spent = [o for o in outcomes if not isinstance(o, BaseException)]
    refused = [o for o in outcomes if isinstance(o, ledger.InsufficientPoints)]
    assert len(spent) == 3 and len(refused) == 3, outcomes
    assert (await ledger.balance_of(mid)).balance == 1


async def test_ticket_claim_under_concurrency_has_one_winner(client: TestClient) -> None:
    from bot.staff.auth import create_staff
    from community.inbox import service as inbox
    from community.inbox.models import Ticket

    services = client.app[SERVICES]
    account = await get_or_create_account("web", "needs-human")
    ticket, _ = await inbox.open_ticket(services, account.member.id, "web", "human")
    agents = [await create_staff(f"agent{i}", "secret-pass-1", ["agent"]) for i in range(6)]
    wins = await asyncio.gather(*[inbox.claim(services, ticket.id, a.id) for a in agents])
    assert sum(wins) == 1
    assert (await Ticket.get(id=ticket.id)).assignee_id == agents[wins.index(True)].id


async def test_point_queries_return_what_the_orm_returns(client: TestClient) -> None:
    """The hot-path lookups bypass the query builder; the objects must be the ORM's own."""
    from bot.core import point_queries
    from community.inbox import service as inbox
    from community.inbox.models import Ticket

    r = await client.post(
        "/api/v1/chat", json={**as_member("pq"), "text": "我的流量还剩多少", "msg_id": "pq-1", "locale": "zh-TW"}
    )
    assert r.status == 200
    fast = await point_queries.get_or_none(ChannelAccount, ("member", Member), channel="web", external_id="pq")
    slow = await ChannelAccount.get(channel="web", external_id="pq").select_related("member")
    assert fast is not None
    assert {f: getattr(fast, f) for f in ChannelAccount._meta.db_fields} == {
        f: getattr(slow, f) for f in ChannelAccount._meta.db_fields
    }
    assert {f: getattr(fast.member, f) for f in Member._meta.db_fields} == {
        f: getattr(slow.member, f) for f in Member._meta.db_fields
    }
    assert fast.member.locale == "zh_TW" and fast.last_inbound_at is not None and fast.last_inbound_at.tzinfo
    assert fast.chat_id == "pq" and fast.member.last_seen_at is not None  # set by the first contact itself
    assert (
        await point_queries.get_or_none(ChannelAccount, ("member", Member), channel="web", external_id="nobody") is None
    )

    _, nothing = await point_queries.get_with(
        ChannelAccount, ("member", Member), (inbox.LIVE_TICKET,), channel="web", external_id="pq"
    )
    assert nothing == {"live_ticket": None}  # no live ticket: the LEFT JOIN reads NULLs
    ticket, _ = await inbox.open_ticket(client.app[SERVICES], fast.member_id, "web", "human")
    live = await inbox.live_ticket(fast.member_id)
    with_account, beside = await point_queries.get_with(
        ChannelAccount, ("member", Member), (inbox.LIVE_TICKET,), channel="web", external_id="pq"
    )
    read_beside = beside["live_ticket"]
    assert with_account is not None and with_account.member.id == fast.member_id
    assert read_beside is not None and {f: getattr(read_beside, f) for f in Ticket._meta.db_fields} == {
        f: getattr(live, f) for f in Ticket._meta.db_fields
    }
    orm = await Ticket.get(id=ticket.id)
    assert live is not None
    assert {f: getattr(live, f) for f in Ticket._meta.db_fields} == {f: getattr(orm, f) for f in Ticket._meta.db_fields}
    assert isinstance(live.urgent_why, list) and isinstance(live.urgent, bool)
    await live.save(update_fields=["summary"])  # an instance from a point query saves like any other


def test_for_dialect_numbers_placeholders() -> None:
    import re

    from hypothesis import given, strategies as st

    from bot.core.point_queries import for_dialect

    assert for_dialect("a = ? AND b = ?", "postgres") == "a = $1 AND b = $2"
    assert for_dialect("a = ? AND b = ?", "sqlite") == "a = ? AND b = ?"
    assert for_dialect("a = ?", "mysql") == "a = %s"

    # (a placeholder is never followed by a digit in SQL, so digits stay out of the chunks)
    @given(
        st.lists(
            st.text(
                alphabet=st.characters(blacklist_characters="?$0123456789", blacklist_categories=("Nd",)), max_size=5
            ),
            min_size=1,
            max_size=8,
        )
    )
    def numbered_in_order(chunks: list[str]) -> None:
        parts = re.split(r"\$(\d+)", for_dialect("?".join(chunks), "postgres"))
        assert parts[0::2] == chunks  # the SQL around the placeholders is untouched
        assert [int(n) for n in parts[1::2]] == list(range(1, len(chunks)))  # $1, $2, … in order

    numbered_in_order()


async def test_concurrent_staff_edits_each_get_a_version_number(client: TestClient) -> None:
    """Six reviewers saving the same item at once: six versions, numbered without a clash."""
    from community.knowledge_admin import service as ka
    from community.knowledge_admin.models import KnowledgeVersion
    from community.models import KnowledgeItem

    item = await KnowledgeItem.create(key="race", locale="zh_CN", title="并发编辑", answer="v0", status="published")
    versions = await asyncio.gather(
        *[ka.propose(item, {"answer": f"第 {i} 版"}, f"staff{i}", submit=True) for i in range(6)]
    )
    numbers = sorted(v.number for v in versions)
    assert numbers == list(range(numbers[0], numbers[0] + 6))
    assert await KnowledgeVersion.filter(item_id=item.id).count() == 6


@given(st.datetimes(timezones=st.none() | st.just(timezone.utc) | st.just(timezone(timedelta(hours=8)))))
def test_point_queries_parse_stored_timestamps_as_tortoise_does(dt: datetime) -> None:
    """SQLite keeps timestamps as text (tortoise's adapter: ``isoformat(" ")``); the point
    queries parse them with ``datetime.fromisoformat`` before tortoise sees them."""
    field = Member._meta.fields_map["last_seen_at"]
    text = dt.isoformat(" ")
    ours, theirs = field.to_python_value(datetime.fromisoformat(text)), field.to_python_value(text)
    assert (ours, ours.utcoffset()) == (theirs, theirs.utcoffset())
