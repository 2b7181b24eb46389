"""The whole funnel through the app: failed search -> community post -> deadline ->
ticket -> agent reply on the member's channel -> close -> survey; plus the fast path
(/human) and a peer answer accepted before the deadline (no ticket)."""

from __future__ import annotations

import re
from datetime import timedelta

import pytest
import pytest_asyncio
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.core.app_keys import SERVICES
from bot.core.models import ChannelAccount, OutboxMessage
from community.inbox.models import Ticket, TicketMessage
from community.qa.deadlines import check_deadlines
from community.qa.models import Answer, HelpRequest, Question
from tests.community_helpers import member_headers, NO_ANSWER, chat, csrf, staff_login, wait_sent
from tests.conftest import load_sample_kb, make_settings


@pytest_asyncio.fixture
async def client(tmp_path):  # type: ignore[no-untyped-def]
    settings = make_settings(tmp_path, qa_deadline_check_seconds=0)  # tests call check_deadlines
    app = create_app(settings, db_setup="schema")
    async with TestClient(TestServer(app)) as c:
        await load_sample_kb(app)
        yield c


async def test_failed_search_to_ticket_to_agent_reply_and_survey(client) -> None:
    services = client.app[SERVICES]
    first = await chat(client, "m1", text=NO_ANSWER)
    assert first[0]["kind"] == "none"
    posted = await chat(client, "m1", action="post")
    assert posted[0]["kind"] == "post"
    q = await Question.get(text=NO_ANSWER)
    assert q.status == "open" and q.code in posted[0]["text"] and q.unanswered_id is not None

    # nobody answers: bumped once, then handed to the agents at the deadline
    assert (await check_deadlines(services, now=q.created_at + timedelta(minutes=5))).bumped == 0
    report = await check_deadlines(services, now=q.created_at + timedelta(minutes=16))
    assert report.bumped == 1 and report.ticketed == 0
    assert (await check_deadlines(services, now=q.created_at + timedelta(minutes=17))).bumped == 0
    report = await check_deadlines(services, now=q.created_at + timedelta(minutes=31))
    assert report.ticketed == 1
    assert (await check_deadlines(services, now=q.created_at + timedelta(minutes=40))).ticketed == 0
    ticket = await Ticket.get(member__accounts__external_id="m1")
    assert ticket.reason == "deadline" and ticket.question_id == q.id and ticket.status == "open"
    await wait_sent(channel="web", address="m1", idempotency_key=f"qa-ticket:{q.id}")

    # the agent sees the context, claims and replies
    await staff_login(client, "ann", ["agent"])
    html, token = await csrf(client, f"/inbox/t/{ticket.id}")
    assert NO_ANSWER in html and q.code in html
    assert re.search(r"1\D+1", html)  # contact 1 today, 1 this week
    resp = await client.post(f"/inbox/t/{ticket.id}/claim", data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 303
    html, token = await csrf(client, f"/inbox/t/{ticket.id}")
    nonce = re.search(r'name="nonce" value="([^"]+)"', html).group(1)
    for _ in range(2):  # a double submit sends once
        resp = await client.post(
            f"/inbox/t/{ticket.id}/reply",
            allow_redirects=False,
            data={"csrf_token": token, "nonce": nonce, "text": "您好，猫咪夜里活跃是天性。"},
        )
        assert resp.status == 303
    row = await wait_sent(channel="web", address="m1", purpose="agent")
    assert await OutboxMessage.filter(purpose="agent").count() == 1
    updates = await (
        await client.get("/api/v1/chat/updates", params={"after": "0"}, headers=member_headers("m1"))
    ).json()
    assert any(m["id"] == row.id and "猫咪" in m["text"] for m in updates["messages"])
    assert (await Ticket.get(id=ticket.id)).first_response_at is not None

    # while the agent owns the ticket the bot stays quiet and forwards
    assert await chat(client, "m1", text="谢谢，那怎么让它安静？") == []
    assert await TicketMessage.filter(ticket_id=ticket.id, author="member", text="谢谢，那怎么让它安静？").exists()

    # close: one survey on the member's channel; the answer is stored once
    resp = await client.post(f"/inbox/t/{ticket.id}/close", data={"csrf_token": token}, allow_redirects=False)
    assert resp.status == 303
    await client.post(f"/inbox/t/{ticket.id}/close", data={"csrf_token": token}, allow_redirects=False)
    await wait_sent(channel="web", address="m1", purpose="survey")
    assert await OutboxMessage.filter(purpose="survey").count() == 1
    thanks = await chat(client, "m1", text="4")
    assert thanks[0]["kind"] == "survey_answer"
    again = await chat(client, "m1", text="5")
    assert again and again[0]["kind"] != "survey_answer"
    closed = await Ticket.get(id=ticket.id)
    assert closed.status == "closed" and closed.survey_score == 4
    # after closing, the bot answers again
    assert (await chat(client, "m1", text="怎么查话费"))[0]["kind"] in ("answer", "suggest")


async def test_fast_path_human_opens_one_ticket(client) -> None:
    await chat(client, "m2", text=NO_ANSWER)
    first = await chat(client, "m2", text="/human")
    second = await chat(client, "m2", text="人工")
    assert first[0]["kind"] == second[0]["kind"] == "handover"
    tickets = await Ticket.filter(member__accounts__external_id="m2")
    assert len(tickets) == 1 and tickets[0].reason == "human"
    assert tickets[0].summary == NO_ANSWER and tickets[0].unanswered_id is not None


async def test_complaint_is_urgent_and_first_in_queue(client) -> None:
    await chat(client, "m3", text="/human")
    await chat(client, "m4", text="我要投诉你们的信号太差了")
    complaint = await Ticket.get(member__accounts__external_id="m4")
    assert complaint.reason == "complaint" and complaint.urgent and "complaint" in complaint.urgent_why
    await staff_login(client, "bea", ["agent"])
    html = await (await client.get("/inbox")).text()
    assert html.index(f'data-ticket="{complaint.id}"') < html.index('data-ticket="', html.index("<tbody") + 1) + 1


async def test_peer_answer_accepted_before_deadline_makes_no_ticket(client) -> None:
    services = client.app[SERVICES]
    assert (await chat(client, "helper", text="helper on"))[0]["kind"] == "helper"
    posted = await chat(client, "asker", text="/ask 我家的猫为什么总是半夜唱京剧")
    assert posted[0]["kind"] == "post"
    q = await Question.get(text=NO_ANSWER)
    helper = await ChannelAccount.get(channel="web", external_id="helper")
    assert await HelpRequest.filter(question_id=q.id, helper_id=helper.member_id).exists()
    offer = await wait_sent(channel="web", address="helper", purpose="notification")
    assert offer.payload["choices"][0]["action"] == f"ans:{q.code}"

    shown = await chat(client, "helper", action=f"ans:{q.code}")
    assert NO_ANSWER in shown[0]["text"]
    done = await chat(client, "helper", text="猫是夜行动物，白天多陪它玩。")
    assert done[0]["kind"] == "answered"
    answer = await Answer.get(question_id=q.id)
    note = await wait_sent(channel="web", address="asker", idempotency_key=f"qa-answer:{answer.id}")
    assert {c["action"] for c in note.payload["choices"]} >= {f"acc:{answer.id}", f"vote:{answer.id}"}

    assert (await chat(client, "helper", action=f"acc:{answer.id}"))[0]["kind"] == "error"  # not the asker
    assert (await chat(client, "asker", action=f"vote:{answer.id}"))[0]["kind"] == "vote"
    assert (await chat(client, "asker", action=f"vote:{answer.id}"))[0]["text"] != ""
    assert (await chat(client, "asker", action=f"acc:{answer.id}"))[0]["kind"] == "accepted"
    assert (await chat(client, "asker", action=f"acc:{answer.id}"))[0]["kind"] == "accepted"  # again: no-op
    answer = await Answer.get(id=answer.id)
    assert answer.accepted and answer.helpful_count == 1
    from gamification.service import GAMIFICATION

    gamification = client.app[GAMIFICATION]
    earned = await gamification.member_summary(helper.member_id)
    # accepted + helpful, paid once despite the repeated presses; the asker is a new member, so
    # the points are pending (issue 16) and the vote of a new member weighs nothing
    assert earned["pending"] > 0 and earned["points"] == 0
    assert await gamification.member_summary(helper.member_id) == earned
    assert (await Question.get(id=q.id)).status == "accepted"
    report = await check_deadlines(services, now=q.created_at + timedelta(hours=2))
    assert report.ticketed == 0 and await Ticket.all().count() == 0
    page = await (await client.get(f"/questions/{q.code}")).text()
    assert "猫是夜行动物" in page


async def test_unhelpful_answer_hands_over_as_unsatisfied(client) -> None:
    await chat(client, "asker2", text="/ask 我家的猫为什么总是半夜唱京剧")
    q = await Question.get(text=NO_ANSWER)
    await chat(client, "helper2", text=f"answer {q.code} 给它听摇滚乐")
    reply = await chat(client, "asker2", action=f"unhelp:{q.code}")
    assert reply[0]["kind"] == "handover"
    ticket = await Ticket.get(question_id=q.id)
    assert ticket.reason == "unsatisfied"
    assert (await Question.get(id=q.id)).status == "ticketed"


@pytest.mark.parametrize("text", ["/questions", "问题"])
async def test_questions_list_offers_answer_buttons(client, text) -> None:
    await chat(client, "asker3", text="/ask 我家的猫为什么总是半夜唱京剧")
    q = await Question.get(text=NO_ANSWER)
    listed = await chat(client, "someone", text=text)
    assert f"ans:{q.code}" in [c["action"] for c in listed[0]["choices"]]
    mine = await chat(client, "asker3", text=text)
    assert f"ans:{q.code}" not in [c["action"] for c in mine[0].get("choices", [])]
