"""The BM25 channel: a full build (bulk load) and one-by-one additions must agree."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from community.search.index import BM25Channel

TERMS = st.sampled_from(["流量", "话费", "套餐", "查询", "漫游", "data", "bill", "top", "up", "x"])
DOCS = st.lists(st.lists(TERMS, min_size=0, max_size=8), min_size=1, max_size=25)
QUERY = st.lists(TERMS, min_size=1, max_size=5)


def _scores(channel: BM25Channel, n: int, query: list[str]) -> np.ndarray:
    out = np.zeros(n, dtype=np.float64)
    channel.score_into(out, query, 1.0)
    return out


@settings(max_examples=150, deadline=None)
@given(DOCS, QUERY)
def test_bulk_load_equals_adding_one_by_one(docs: list[list[str]], query: list[str]) -> None:
    bulk = BM25Channel()
    bulk.bulk_load(docs)
    # term ids are handed out in first-seen order either way
    seq = BM25Channel()
    for slot, terms in enumerate(docs):
        seq.add(slot, terms)
    assert bulk.vocab == seq.vocab
    for slot in range(len(docs)):
        assert bulk.slot_terms(slot) == seq.slot_terms(slot)
    assert bulk.n_docs == len(docs)
    # the same average length once both are frozen, then the same scores
    seq.freeze_avgdl()
    assert seq.avgdl() == bulk.avgdl()
    ref = BM25Channel()
    ref._avgdl = bulk.avgdl()  # what a full build freezes; each addition scores against it
    for slot, terms in enumerate(docs):
        ref.add(slot, terms)
    np.testing.assert_allclose(_scores(bulk, len(docs), query), _scores(ref, len(docs), query))


@settings(max_examples=100, deadline=None)
@given(DOCS, QUERY, st.data())
def test_updates_after_a_bulk_load_score_like_a_fresh_index(
    docs: list[list[str]], query: list[str], data: st.DataObject
) -> None:
    """Remove some bulk-loaded slots, add new ones: the live slots score as if indexed directly."""
    ch = BM25Channel()
    ch.bulk_load(docs)
    ch.score_into(np.zeros(len(docs)), query, 1.0)  # materialise some arrays first
    removed = data.draw(st.sets(st.integers(0, len(docs) - 1)))
    extra = data.draw(st.lists(st.lists(TERMS, max_size=8), max_size=5))
    for slot in removed:
        ch.remove(slot)
    for i, terms in enumerate(extra):
        ch.add(len(docs) + i, terms)
    live = [(s, t) for s, t in enumerate(docs) if s not in removed]
    live += [(len(docs) + i, t) for i, t in enumerate(extra)]
    ref = BM25Channel()
    ref._avgdl = ch.avgdl()
    for slot, terms in live:
        ref.add(slot, terms)
    n = len(docs) + len(extra)
    got, want = _scores(ch, n, query), _scores(ref, n, query)
    live_slots = [s for s, _ in live]
    np.testing.assert_allclose(got[live_slots], want[live_slots])
    assert ch.n_docs == len(live)
    for slot, terms in live:
        assert sum(ch.slot_terms(slot).values()) == len(terms)


def test_bulk_load_needs_an_empty_channel() -> None:
    ch = BM25Channel()
    ch.add(0, ["流量"])
    try:
        ch.bulk_load([["话费"]])
    except ValueError as e:
        assert "empty" in str(e)
    else:
        raise AssertionError("bulk_load into a used channel must refuse")


def test_a_build_pauses_the_cyclic_collector_and_restores_it(tmp_path) -> None:
    import gc

    from community.search.matcher import Matcher, MatcherConfig
    from community.search.types import KBDoc

    seen: list[bool] = []

    class Spy(list):
        def __iter__(self):  # the build iterates the documents inside the pause
            seen.append(gc.isenabled())
            return super().__iter__()

    m = Matcher(MatcherConfig(jieba_tmp_dir=str(tmp_path)))
    assert gc.isenabled()
    gc.unfreeze()
    m.build(Spy([KBDoc(id=1, title="查流量", variants=(), answer="", locale="zh_CN")]))
    assert seen == [False] and gc.isenabled()
    # the index (and all else alive) is frozen out of later collections' walks
    assert gc.get_freeze_count() > 0
    assert gc.is_tracked(m._units) and not any(o is m._units for o in gc.get_objects())
    gc.disable()
    try:  # an outer pause is left to its owner
        m.build(Spy([KBDoc(id=1, title="查流量", variants=(), answer="", locale="zh_CN")]))
        assert not gc.isenabled()
    finally:
        gc.enable()


@settings(max_examples=100, deadline=None)
@given(st.lists(st.lists(TERMS, max_size=8), min_size=1, max_size=6), st.data())
def test_feeding_repeated_texts_equals_loading_every_slot(texts: list[list[str]], data: st.DataObject) -> None:
    """A build analyses a text shared by several slots once; the index is as if each slot was fed."""
    from community.search.index import BulkLoad, feed_slots

    picks = data.draw(st.lists(st.integers(0, len(texts) - 1), min_size=1, max_size=15))
    order: dict[int, int] = {}  # number texts in order of first appearance, as the matcher does
    slot_text = [order.setdefault(p, len(order)) for p in picks]
    distinct = sorted(order, key=order.get)
    analysed: list[int] = []

    def terms_of(j: int) -> tuple[list[str]]:
        analysed.append(j)
        return (texts[distinct[j]],)

    load = BulkLoad()
    feed_slots([load], slot_text, terms_of)
    fed = BM25Channel()
    fed.load(load.result())
    direct = BM25Channel()
    direct.bulk_load([texts[p] for p in picks])
    assert analysed == list(range(len(order)))  # each distinct text once, in order
    assert fed.vocab == direct.vocab and fed.n_docs == direct.n_docs == len(picks)
    for slot in range(len(picks)):
        assert fed.slot_terms(slot) == direct.slot_terms(slot)
    query = data.draw(QUERY)
    np.testing.assert_allclose(_scores(fed, len(picks), query), _scores(direct, len(picks), query))


def test_slot_tids_of_added_slots_even_empty_ones() -> None:
    ch = BM25Channel()
    ch.bulk_load([["流量", "查询"], ["话费"]])
    ch.add(2, [])  # a text with no term in this channel
    ch.add(3, ["流量", "流量"])
    assert set(ch.slot_tids(0)) == {ch.vocab["流量"], ch.vocab["查询"]}
    assert set(ch.slot_tids(2)) == set()
    assert set(ch.slot_tids(3)) == {ch.vocab["流量"]}
    ch.remove(0)
    ch.remove(2)
    assert ch.n_docs == 2
