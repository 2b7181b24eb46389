"""Learning from use: tickets closed with an item teach it, accepted variants reach every
worker, and only a choice offered for the question counts as a pick."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace

from bot.core import storage
from bot.core.app_keys import SERVICES
from bot.core.models import OutboxMessage, UnansweredQuestion
from community.inbox.models import Ticket, TicketMessage
from community.knowledge import KnowledgeService
from community.knowledge_admin import learning
from community.knowledge_admin.models import CandidateVariant
from community.models import KnowledgeItem
from tests.community_helpers import NO_ANSWER, chat, csrf, staff_login, two_workers, wait_sent


# --- 1. an agent closes a ticket naming the item that answered it --------------------------


async def test_close_with_knowledge_item_suggests_the_members_question(client) -> None:
    await chat(client, "t1", text=NO_ANSWER)
    assert (await chat(client, "t1", text="人工"))[0]["kind"] == "handover"
    ticket = await Ticket.get(member__accounts__external_id="t1")
    item = await KnowledgeItem.filter(status="published", locale="zh_CN").order_by("id").first()
    retired = await KnowledgeItem.create(
        key="gone", locale="zh_CN", title="旧业务", answer="已停办。", status="retired"
    )
    await staff_login(client, "closer", ["agent"])
    html, token = await csrf(client, f"/inbox/t/{ticket.id}")
    assert 'name="kb_item"' in html

    # bad ids: a clear 400, the ticket stays open, nothing is learned
    for bad in ("abc", "12345678901234", str(retired.id), "999999"):
        resp = await client.post(
            f"/inbox/t/{ticket.id}/close", data={"csrf_token": token, "kb_item": bad}, allow_redirects=False
        )
        assert resp.status == 400, bad
        assert "已发布" in await resp.text()  # in the staff member's language (zh_CN by default)
    assert (await Ticket.get(id=ticket.id)).status == "open"
    assert await CandidateVariant.all().count() == 0
    assert await OutboxMessage.filter(purpose="survey").count() == 0

    resp = await client.post(
        f"/inbox/t/{ticket.id}/close", data={"csrf_token": token, "kb_item": f"#{item.id}"}, allow_redirects=False
    )
    assert resp.status == 303 and resp.headers["Location"].endswith("flash=answered")
    assert (await Ticket.get(id=ticket.id)).status == "closed"
    cv = await CandidateVariant.get(item_id=item.id)
    assert cv.text == NO_ANSWER and cv.sources == ["ticket"] and cv.members == [ticket.member_id]
    assert cv.status == "candidate"  # one vote: waits for a reviewer (quorum 3)
    assert await TicketMessage.filter(ticket_id=ticket.id, text=f"answered by knowledge item #{item.id}").exists()
    assert ticket.unanswered_id is not None  # answered now: off the "knowledge wanted" list
    assert (await UnansweredQuestion.get(id=ticket.unanswered_id)).resolved
    await wait_sent(channel="web", address="t1", purpose="survey")  # closing still sends the survey

    # a retried close changes nothing
    resp = await client.post(
        f"/inbox/t/{ticket.id}/close", data={"csrf_token": token, "kb_item": str(item.id)}, allow_redirects=False
    )
    assert resp.headers["Location"].endswith("flash=refused")
    assert await CandidateVariant.all().count() == 1
    assert await OutboxMessage.filter(purpose="survey").count() == 1


async def test_close_with_item_needs_a_question_and_plain_close_still_works(client) -> None:
    await chat(client, "t2", text="人工")  # no question asked before
    ticket = await Ticket.get(member__accounts__external_id="t2")
    assert ticket.summary == ""
    item = await KnowledgeItem.filter(status="published").first()
    await staff_login(client, "closer2", ["agent"])
    _h, token = await csrf(client, f"/inbox/t/{ticket.id}")
    resp = await client.post(
        f"/inbox/t/{ticket.id}/close", data={"csrf_token": token, "kb_item": str(item.id)}, allow_redirects=False
    )
    assert resp.status == 400 and "没有会员的提问" in await resp.text()
    assert (await Ticket.get(id=ticket.id)).status == "open"
    resp = await client.post(
        f"/inbox/t/{ticket.id}/close", data={"csrf_token": token, "kb_item": " "}, allow_redirects=False
    )
    assert resp.status == 303 and "flash" not in resp.headers["Location"]
    assert (await Ticket.get(id=ticket.id)).status == "closed"
    assert await CandidateVariant.all().count() == 0


# --- 2. an accepted variant reaches the other workers -------------------------------------


async def test_accepted_variant_reaches_every_worker(tmp_path: Path) -> None:
    await storage.open_db(f"sqlite://{tmp_path / 'l.sqlite3'}", create_schema=True)
    try:
        item = await KnowledgeItem.create(
            key="roam", locale="zh_CN", title="国际漫游怎么开通", answer="发送 KTMY 开通。", variants=["开通漫游"]
        )
        await KnowledgeItem.create(key="esim", locale="zh_CN", title="eSIM 怎么办理", answer="到营业厅办理。")
        async with two_workers() as (a, b):
            await _accept_on_a_reaches_b(item, a, b)
    finally:
        await storage.close_db()


async def _accept_on_a_reaches_b(item: KnowledgeItem, a: KnowledgeService, b: KnowledgeService) -> None:
    on_a = SimpleNamespace(kb=a, settings=SimpleNamespace(kb_variant_auto_accept=2))
    phrasings = b.matcher.n_questions(item.id)

    # a reviewer's accept on worker a
    text = "出国了手机怎么用"
    await learning.suggest_variant(on_a, item.id, text, "pick", 1)
    cv = await CandidateVariant.get(item_id=item.id, normalized=learning.normalize(text))
    assert await learning.accept(on_a, cv, "staff:rev")
    await _until(lambda: b.matcher.n_questions(item.id) == phrasings + 1)
    for worker in (a, b):
        assert text in (await worker.get(item.id)).variants  # the cached record, not only the index
        assert worker.matcher.n_questions(item.id) == phrasings + 1
        assert worker.matcher.search(text, limit=1)[0].item_id == item.id

    # the automatic path (quorum of agreeing members) goes the same way
    auto = "人在国外打不了电话"
    for member in (1, 2):
        await learning.suggest_variant(on_a, item.id, auto, "pick", member)
    assert (await CandidateVariant.get(item_id=item.id, normalized=learning.normalize(auto))).status == "accepted"
    await _until(lambda: b.matcher.n_questions(item.id) == phrasings + 2)
    assert auto in (await b.get(item.id)).variants


async def _until(cond, timeout: float = 10.0) -> None:  # type: ignore[no-untyped-def]
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError("the other worker never caught up")
        await asyncio.sleep(0.02)


# --- 3. only a choice offered for the question is a pick -----------------------------------


def _kb_actions(replies: list[dict]) -> list[int]:
    return [int(c["action"][3:]) for r in replies for c in r.get("choices", []) if c["action"].startswith("kb:")]


async def test_only_offered_choices_become_candidates(client) -> None:
    kb = client.app[SERVICES].kb
    question = "宽带"
    assert kb.decide(question, "zh_CN").kind == "suggest"
    unrelated = await KnowledgeItem.get(title="怎么查询我的积分？")

    # a menu click / deep link to an item that was not offered: nothing learned
    offered = _kb_actions(await chat(client, "p1", text=question))
    assert len(offered) >= 2 and unrelated.id not in offered
    shown = await chat(client, "p1", action=f"kb:{unrelated.id}")
    assert shown[0]["kind"] == "answer_pick"
    assert not await CandidateVariant.filter(item_id=unrelated.id).exists()

    # an old did-you-mean button pressed after a newer, answered question: nothing learned
    await chat(client, "p2", text=question)
    assert (await chat(client, "p2", text="怎么查询剩余流量？"))[0]["kind"] == "answer"
    await chat(client, "p2", action=f"kb:{offered[1]}")
    assert not await CandidateVariant.filter(item_id=offered[1]).exists()

    # a real pick, by number, is a candidate for the question asked
    await chat(client, "p3", text=question)
    await chat(client, "p3", text="1")
    cv = await CandidateVariant.get(item_id=offered[0])
    assert cv.text == question and cv.sources == ["pick"]

    # 👎 on it, then another choice of the same list: the better pick
    await chat(client, "p3", action=f"fb:down:{offered[0]}")
    await chat(client, "p3", action=f"kb:{offered[1]}")
    better = await CandidateVariant.get(item_id=offered[1])
    assert better.text == question and better.sources == ["better_pick"]
