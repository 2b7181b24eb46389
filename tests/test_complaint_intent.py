"""Complaint intent: expressions of complaint become urgent tickets, questions about
complaints are answered from the knowledge base; floors on a labelled set."""

from __future__ import annotations

import sys
from pathlib import Path

from hypothesis import given
from hypothesis import strategies as st

from bot.core.settings import ROOT
from community.inbox.intent import classify
from community.inbox.models import Ticket
from tests.community_helpers import chat

sys.path.insert(0, str(ROOT / "bench"))
import complaints as bench  # noqa: E402

PRECISION_FLOOR = 0.95
RECALL_FLOOR = 0.95
HOLDOUT_FLOOR = 0.9  # written after tuning and first scored at 0.933 / 0.609: see bench/RESULTS.md


def test_labelled_set_is_large_and_covers_every_kind_and_locale() -> None:
    examples = bench.load()
    assert len(examples) >= 200
    kinds = {(ex.label, ex.locale) for ex in examples}
    assert kinds == {(label, loc) for label in ("complaint", "question", "none") for loc in ("zh_CN", "zh_TW", "en")}


def test_precision_and_recall_floors() -> None:
    scores, errors = bench.score(bench.load())
    assert scores.precision >= PRECISION_FLOOR, errors
    assert scores.recall >= RECALL_FLOOR, errors
    assert scores.questions_kept >= 0.95 * scores.questions, errors
    for locale in ("zh_CN", "zh_TW", "en"):
        s, errs = bench.score(bench.load(), locale)
        assert s.precision >= 0.85 and s.recall >= 0.85, (locale, errs)


def test_holdout_floors() -> None:
    scores, errors = bench.score(bench.load(Path(bench.HOLDOUT)))
    assert scores.precision >= HOLDOUT_FLOOR and scores.recall >= HOLDOUT_FLOOR, errors


def test_examples_from_the_issue() -> None:
    assert classify("怎么查询投诉的处理进度？") == "question"
    assert classify("投诉渠道有哪些") == "question"
    assert classify("how to complain about roaming fees") == "question"
    assert classify("我要投诉你们乱扣费") == "complaint"
    assert classify("再不解决我就打12300") == "complaint"
    assert classify("工信部的投诉电话是多少") == "question"
    assert classify("垃圾短信怎么拦截") == "none"
    assert classify("") == "none"


@given(st.text(max_size=300))
def test_any_text_gets_one_of_three_answers(text: str) -> None:
    assert classify(text) in ("complaint", "question", "none")


async def test_question_about_complaints_is_answered_and_complaint_opens_urgent_ticket(client) -> None:
    replies = await chat(client, "ci1", text="怎么查询投诉的处理进度？")
    assert replies[0]["kind"] in ("answer", "answer_pick", "suggest")
    assert not await Ticket.filter(member__accounts__external_id="ci1").exists()
    replies = await chat(client, "ci2", text="我要投诉，你们再不处理我就去工信部")
    assert replies[0]["kind"] == "handover"
    ticket = await Ticket.get(member__accounts__external_id="ci2")
    assert ticket.urgent and "complaint" in ticket.urgent_why and ticket.reason == "complaint"
