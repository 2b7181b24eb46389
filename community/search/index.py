"""A small in-memory BM25 inverted index with incremental updates.

Postings live in per-term dicts (the truth, cheap to update one document)
and are materialised as numpy arrays (fast to score).  A full build
(``BulkLoad`` then ``load``) computes every array at once, vectorised, slices a term's
array out of them on first use and creates its dict only when an update
first touches that term.  An addition after
materialisation goes to a small per-term "pending" dict scored in Python,
until it outgrows 1/8 of the array, which is then rebuilt; a removal leaves
a stale array entry behind that the caller must zero out (the matcher
multiplies by a per-slot weight that is 0 for removed slots and never
reuses a slot number until the next full build).  Scores for all slots are
accumulated into one dense numpy vector, so a query costs
O(sum of posting lengths of its terms) vectorised work.
"""

from __future__ import annotations

import itertools
import math
from array import array
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Iterable, Sequence
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

__all__ = ["BM25Channel", "BulkLoad", "SlotTerms", "feed_slots"]


class BM25Channel:
    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self.vocab: dict[str, int] = {}
        self._post: list[dict[int, float] | None] = []  # None: derive from _arr
        self._df: list[int] = []
        self._arr: list[tuple[np.ndarray, np.ndarray] | None] = []
        self._pending: dict[int, dict[int, float]] = {}
        self.n_docs = 0
        self._total_len = 0
        self._avgdl: float | None = None  # frozen at build; running mean before
        # per-slot {term id: tf}: dicts for added slots, CSR arrays for bulk-loaded ones
        self._slot_terms: dict[int, dict[int, int]] = {}
        self._slot_sets: dict[int, set[int]] = {}
        self._slot_bounds: list[int] = [0]
        self._slot_tid = self._slot_tf = np.zeros(0, dtype=np.int64)
        _empty = np.zeros(0, dtype=np.int64)
        self._bulk: tuple[np.ndarray, np.ndarray, np.ndarray] = (_empty, _empty.astype(np.float64), _empty)

    # ------------------------------------------------------------ updates
    def _tid(self, term: str) -> int:
        tid = self.vocab.get(term)
        if tid is None:
            tid = len(self._post)
            self.vocab[term] = tid
            self._post.append({})
            self._df.append(0)
            self._arr.append(None)
        return tid

    def avgdl(self) -> float:
        if self._avgdl is not None:
            return self._avgdl
        return max(1.0, self._total_len / self.n_docs) if self.n_docs else 1.0

    def freeze_avgdl(self) -> None:
        self._avgdl = max(1.0, self._total_len / self.n_docs) if self.n_docs else None

    def _postings(self, tid: int) -> dict[int, float]:
        p = self._post[tid]
        if p is None:
            idx, vals = self._array(tid)
            p = dict(zip(idx.tolist(), vals.tolist()))
            self._post[tid] = p
        return p

    def bulk_load(self, term_lists: Iterable[list[str]]) -> None:
        """Index slots ``0, 1, ...`` of an empty channel at once: ``BulkLoad`` + ``load``
        in one call, for callers that already hold every term list."""
        load = BulkLoad()
        for terms in term_lists:
            load.add(terms)
        self.load(load.result())

    def load(self, slots: SlotTerms) -> None:
        """Index a full build's slots into this empty channel, vectorised; per-term
        arrays and per-slot term counts are sliced out lazily on first use."""
        if self.n_docs or self.vocab:
            raise ValueError("a full build needs an empty channel")
        n = len(slots.lens)
        n_terms = len(slots.vocab)
        self.vocab = slots.vocab
        self._post = [None] * n_terms
        self._arr = [None] * n_terms
        self.n_docs = n
        self._total_len = int(slots.lens.sum())
        self.freeze_avgdl()
        self._pending.clear()
        self._slot_bounds = [0, *np.cumsum(slots.counts, dtype=np.int64).tolist()]
        self._slot_terms.clear()
        self._slot_sets.clear()
        self._slot_tid, self._slot_tf = slots.tid, slots.tf
        slot_u = np.repeat(np.arange(n, dtype=np.int64), slots.counts)
        k1, b = self.k1, self.b
        tf = slots.tf.astype(np.float64)
        dl = slots.lens[slot_u].astype(np.float64)
        val = tf * (k1 + 1.0) / (tf + k1 * (1.0 - b + b * dl / self.avgdl()))
        df = np.bincount(slots.tid, minlength=n_terms)
        self._df = df.tolist()
        order = slots.order
        self._bulk = (slot_u[order], val[order], np.concatenate(([0], np.cumsum(df))))

    def add(self, slot: int, terms: list[str]) -> dict[int, int]:
        """Index ``terms`` under ``slot``; returns {term id: tf} (keep it to
        remove the slot later)."""
        tf = Counter(terms)
        dl = len(terms)
        self.n_docs += 1
        self._total_len += dl
        if self._avgdl is None:
            avg = max(1.0, self._total_len / self.n_docs)
        else:
            avg = self._avgdl
        k1, b = self.k1, self.b
        denom_base = k1 * (1.0 - b + b * dl / avg)
        out: dict[int, int] = {}
        for term, f in tf.items():
            tid = self._tid(term)
            v = f * (k1 + 1.0) / (f + denom_base)
            post = self._postings(tid)
            if slot not in post:
                self._df[tid] += 1
            post[slot] = v
            arr = self._arr[tid]
            if arr is not None:
                pend = self._pending.setdefault(tid, {})
                pend[slot] = v
                if len(pend) > 32 + len(arr[0]) // 8:
                    self._arr[tid] = None
                    del self._pending[tid]
            out[tid] = f
        self._slot_terms[slot] = out
        return out

    def slot_terms(self, slot: int) -> dict[int, int]:
        """{term id: tf} of one slot."""
        d = self._slot_terms.get(slot)
        if d is None:
            lo, hi = self._slot_bounds[slot], self._slot_bounds[slot + 1]
            d = dict(zip(self._slot_tid[lo:hi].tolist(), self._slot_tf[lo:hi].tolist()))
        return d

    def slot_tids(self, slot: int) -> set[int] | dict[int, int]:
        """The term ids of one slot, for ``coverage``: made on the slot's first re-rank
        and kept (a set: half the cost of ``slot_terms`` on a cold query)."""
        s: set[int] | dict[int, int] | None = self._slot_terms.get(slot)
        if s is None:
            s = self._slot_sets.get(slot)
        if s is None:
            lo, hi = self._slot_bounds[slot], self._slot_bounds[slot + 1]
            s = self._slot_sets[slot] = set(self._slot_tid[lo:hi].tolist())
        return s

    def remove(self, slot: int) -> None:
        tids = self.slot_terms(slot)
        self._slot_terms.pop(slot, None)
        self._slot_sets.pop(slot, None)
        self.n_docs -= 1
        self._total_len -= sum(tids.values())
        for tid in tids:
            if self._postings(tid).pop(slot, None) is not None:
                self._df[tid] -= 1
            pend = self._pending.get(tid)
            if pend is not None:
                pend.pop(slot, None)

    # ------------------------------------------------------------ scoring
    def idf(self, tid: int | None) -> float:
        return _idf(max(self.n_docs, 1), self._df[tid] if tid is not None else 0)

    def _array(self, tid: int) -> tuple[np.ndarray, np.ndarray]:
        a = self._arr[tid]
        if a is None:
            p = self._post[tid]
            if p is None:  # untouched since the bulk load: a slice of its arrays
                slot_s, val_s, bounds = self._bulk
                lo, hi = bounds[tid], bounds[tid + 1]
                a = self._arr[tid] = (slot_s[lo:hi], val_s[lo:hi])
                return a
            a = (
                np.fromiter(p.keys(), dtype=np.int64, count=len(p)),
                np.fromiter(p.values(), dtype=np.float64, count=len(p)),
            )
            self._arr[tid] = a
            self._pending.pop(tid, None)
        return a

    def score_into(self, out: np.ndarray, terms: list[str], weight: float) -> float:
        """Add ``weight * BM25 / norm`` for every slot to ``out``; ``norm`` is
        the idf mass of the query (OOV terms count with the maximal idf), so
        a slot holding every query term once at average length scores
        ``weight``.  Returns the idf mass (0 if the query has no terms)."""
        if not terms:
            return 0.0
        q = set(terms)
        idfs = []
        mass = 0.0
        for term in q:
            tid = self.vocab.get(term)
            if tid is not None and not self._df[tid]:
                tid = None
            idf = self.idf(tid)
            mass += idf
            if tid is not None:
                idfs.append((tid, idf))
        if mass <= 0 or not idfs:
            return mass
        scale = weight / mass
        for tid, idf in idfs:
            idx, vals = self._array(tid)
            f = idf * scale
            out[idx] += f * vals
            pend = self._pending.get(tid)
            if pend:
                for slot, v in pend.items():
                    out[slot] += f * v
        return mass

    def coverage(self, qtids: set[int], slot_tids: Collection[int]) -> float:
        """Share of the slot's idf mass that the query covers."""
        n = max(self.n_docs, 1)
        df = self._df
        tot = 0.0
        hit = 0.0
        for tid in slot_tids:
            w = _idf(n, df[tid])
            tot += w
            if tid in qtids:
                hit += w
        return hit / tot if tot > 0 else 0.0

    def query_mass(self, terms: list[str]) -> dict[int | None, float]:
        """idf of each distinct query term by term id (OOV terms pooled
        under ``None``, each with the maximal idf): the query's side of
        ``query_coverage``."""
        out: dict[int | None, float] = {}
        for term in set(terms):
            tid = self.vocab.get(term)
            if tid is not None and not self._df[tid]:
                tid = None
            out[tid] = out.get(tid, 0.0) + self.idf(tid)
        return out

    @staticmethod
    def query_coverage(qmass: dict[int | None, float], slot_tids: Collection[int]) -> float:
        """Share of the query's idf mass that the slot holds: how much of
        what the member asked this question explains."""
        tot = 0.0
        hit = 0.0
        for tid, w in qmass.items():
            tot += w
            if tid is not None and tid in slot_tids:
                hit += w
        return hit / tot if tot > 0 else 0.0

    def doc_freq(self, term: str) -> int:
        """How many indexed units hold ``term``."""
        tid = self.vocab.get(term)
        return self._df[tid] if tid is not None else 0

    def query_tids(self, terms: list[str]) -> set[int]:
        v = self.vocab
        return {v[t] for t in terms if t in v}


@dataclass(frozen=True)
class SlotTerms:
    """A full build's channel, counted and sorted but not yet scored: slot ``i`` holds
    ``counts[i]`` distinct terms, the next ones of ``tid``/``tf`` (slot-major), and
    ``order`` sorts those pairs by term.  The expensive part of a load (``np.unique``,
    the sort) is done; what is left for ``BM25Channel.load`` is cheap.  Compact (int32,
    16 bytes per pair), so a build helper process can hand it over."""

    vocab: dict[str, int]
    lens: np.ndarray  # terms per slot, repeats included
    counts: np.ndarray  # distinct terms per slot
    tid: np.ndarray
    tf: np.ndarray
    order: np.ndarray


class BulkLoad:
    """A full build's channel fed one slot at a time.  Term strings are turned into
    int32 ids in chunks (in C: ``map`` + ``np.fromiter``) and then dropped: a 100k-item
    build would otherwise hold millions of small strings until the end."""

    CHUNK = 4096  # slots per conversion

    def __init__(self) -> None:
        self._vocab: defaultdict[str, int] = defaultdict(itertools.count().__next__)
        self._chunk: list[list[str]] = []
        self._parts: list[np.ndarray] = []
        self._lens = array("q")

    def add(self, terms: list[str]) -> None:
        """The next slot's terms."""
        self._chunk.append(terms)
        self._lens.append(len(terms))
        if len(self._chunk) >= self.CHUNK:
            self._flush()

    def _flush(self) -> None:
        if self._chunk:
            total = sum(map(len, self._chunk))
            ids = map(self._vocab.__getitem__, itertools.chain.from_iterable(self._chunk))
            self._parts.append(np.fromiter(ids, dtype=np.int32, count=total))
            self._chunk = []

    def result(self) -> SlotTerms:
        self._flush()
        vocab = dict(self._vocab)
        ids = np.concatenate(self._parts).astype(np.int64) if self._parts else np.zeros(0, dtype=np.int64)
        lens = np.array(self._lens, dtype=np.int64)
        self._parts, self._lens = [], array("q")
        n, n_terms = len(lens), max(len(vocab), 1)
        doc = np.repeat(np.arange(n, dtype=np.int64), lens)
        pair, tf = np.unique(doc * n_terms + ids, return_counts=True)  # slot-major
        slot_u, tid_u = np.divmod(pair, n_terms)
        i32 = np.int32
        return SlotTerms(
            vocab,
            lens.astype(i32),
            np.bincount(slot_u, minlength=n).astype(i32),
            tid_u.astype(i32),
            tf.astype(i32),
            np.argsort(tid_u, kind="stable").astype(i32),
        )


def feed_slots(
    loads: Sequence[BulkLoad], slot_text: Sequence[int], terms_of: Callable[[int], Sequence[list[str]]]
) -> None:
    """Feed every slot of a full build to ``loads`` (one per channel).  Slot ``i`` holds
    text ``slot_text[i]``; ``terms_of(j)`` analyses text ``j`` into one term list per
    load, once: a text shared by several slots is kept only until its last slot."""
    left = Counter(slot_text)
    kept: dict[int, Sequence[list[str]]] = {}
    for j in slot_text:
        terms = kept.get(j)
        if terms is None:
            terms = terms_of(j)
        left[j] -= 1
        if left[j]:
            kept[j] = terms
        else:
            kept.pop(j, None)
        for ld, t in zip(loads, terms):
            ld.add(t)


@lru_cache(maxsize=65536)
def _idf(n: int, df: int) -> float:
    """BM25 idf; memoised because re-ranking asks for the same (n, df) pairs constantly."""
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))
