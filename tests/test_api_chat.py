"""The web chat channel's JSON API, end to end through the pipeline."""

from __future__ import annotations

import asyncio

from bot.core.metrics import INBOUND
from bot.core.models import AnswerFeedback, TranscriptEntry, UnansweredQuestion
from tests.community_helpers import as_member, chat


async def test_zh_question_is_answered_with_feedback_choices(client) -> None:
    replies = await chat(client, user="u1", text="我的流量还剩多少，怎么查？")
    assert replies[0]["kind"] == "answer"
    assert "流量" in replies[0]["text"]
    assert "这个回答有帮助吗" in replies[0]["text"]
    actions = [c["action"] for c in replies[0]["choices"]]
    assert any(a.startswith("fb:up:") for a in actions) and any(a.startswith("fb:down:") for a in actions)


async def test_en_question_answers_in_english(client) -> None:
    replies = await chat(client, user="u2", text="how do I check my data balance")
    assert replies[0]["kind"] == "answer"
    assert "Was this answer helpful?" in replies[0]["text"]


async def test_sms_code_answers_directly(client) -> None:
    replies = await chat(client, user="u3", text="cxll")
    assert replies[0]["kind"] == "answer"
    assert "流量" in replies[0]["text"]


async def test_no_match_records_unanswered_and_offers_next_steps(client) -> None:
    replies = await chat(client, user="u4", text="火星上明天会下雨吗")
    assert replies[0]["kind"] == "none"
    assert {c["action"] for c in replies[0]["choices"]} == {"post", "human"}
    assert await UnansweredQuestion.filter(text="火星上明天会下雨吗").count() == 1


async def test_feedback_is_recorded_once(client) -> None:
    replies = await chat(client, user="u5", text="我的流量还剩多少，怎么查？")
    up = next(c["action"] for c in replies[0]["choices"] if c["action"].startswith("fb:up"))
    first = await chat(client, user="u5", action=up)
    second = await chat(client, user="u5", action=up)
    assert first[0]["kind"] == "feedback" and second[0]["kind"] == "feedback"
    assert await AnswerFeedback.filter(helpful=True).count() == 1


async def test_retried_message_is_processed_once(client) -> None:
    before = INBOUND.labels("web")._value.get()
    body = {**as_member("u6"), "text": "怎么充值话费", "msg_id": "m-1"}
    results = await asyncio.gather(*[client.post("/api/v1/chat", json=body) for _ in range(3)])
    payloads = [await r.json() for r in results]
    assert all(p == payloads[0] for p in payloads)
    assert await TranscriptEntry.filter(msg_id="u6#m-1").count() == 1
    assert INBOUND.labels("web")._value.get() - before == 1


async def test_bad_json_is_400_with_json_error(client) -> None:
    resp = await client.post("/api/v1/chat", data=b"{not json", headers={"Content-Type": "application/json"})
    assert resp.status == 400
    assert "error" in await resp.json()


async def test_missing_fields_are_400(client) -> None:
    for body in ({**as_member("x")}, {"text": ""}, {**as_member("x"), "msg_id": "m" * 65, "text": "hi"}, [1, 2]):
        resp = await client.post("/api/v1/chat", json=body)
        assert resp.status == 400, body
        assert "error" in await resp.json()


async def test_oversize_body_is_413(client) -> None:
    resp = await client.post("/api/v1/chat", data=b"x" * (70 * 1024), headers={"Content-Type": "application/json"})
    assert resp.status == 413
    assert await TranscriptEntry.all().count() == 0


async def test_unknown_action_gets_polite_reply(client) -> None:
    replies = await chat(client, user="u7", action="no-such-thing:42")
    assert replies[0]["kind"] == "error"
    assert "抱歉" in replies[0]["text"] or "Sorry" in replies[0]["text"]


async def test_healthz_and_metrics(client) -> None:
    resp = await client.get("/healthz")
    assert resp.status == 200
    data = await resp.json()
    assert data["database"] == "ok" and data["knowledge_items"] > 80
    await chat(client, user="u8", text="查话费")
    text = await (await client.get("/metrics")).text()
    assert 'everycsr_inbound_messages_total{channel="web"}' in text
    assert "everycsr_answer_latency_seconds_bucket" in text


async def test_repeat_contact_is_noticed_and_offers_a_person(client) -> None:
    first = await chat(client, user="rep", text="我的流量还剩多少，怎么查？")
    assert "human" not in [c["action"] for c in first[0]["choices"]]
    second = await chat(client, user="rep", text="我的流量还剩多少，怎么查？")
    assert "第 2 次" in second[0]["text"]
    assert "human" in [c["action"] for c in second[0]["choices"]]
