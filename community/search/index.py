"""A small in-memory BM25 inverted index with incremental updates.

Postings live in per-term dicts (the truth, cheap to update one document)
and are materialised as numpy arrays (fast to score).  A full build
(``bulk_load``) computes every array at once, vectorised, slices a term's
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
from collections import Counter, defaultdict
from functools import lru_cache

import numpy as np

__all__ = ["BM25Channel"]


class BM25Channel:
    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self.vocab: dict[str, int] = {}
        self._post: list[dict[int, float] | None] = []   # None: derive from _arr
        self._df: list[int] = []
        self._arr: list[tuple[np.ndarray, np.ndarray] | None] = []
        self._pending: dict[int, dict[int, float]] = {}
        self.n_docs = 0
        self._total_len = 0
        self._avgdl: float | None = None  # frozen at build; running mean before
        # per-slot {term id: tf}: dicts for added slots, CSR arrays for bulk-loaded ones
        self._slot_terms: dict[int, dict[int, int]] = {}
        self._slot_bounds = np.zeros(1, dtype=np.int64)
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

    def bulk_load(self, term_lists: list[list[str]]) -> None:
        """Index slots ``0 .. len(term_lists) - 1`` into an empty channel at
        once (a full build).  Everything per term occurrence runs in C
        (``map``, ``np.fromiter``, ``np.unique``); per-term arrays and
        per-slot term counts are sliced out lazily on first use."""
        if self.n_docs or self.vocab:
            raise ValueError("bulk_load needs an empty channel")
        n = len(term_lists)
        lens = np.fromiter(map(len, term_lists), dtype=np.int64, count=n)
        total = int(lens.sum())
        assign: defaultdict[str, int] = defaultdict(itertools.count().__next__)
        flat = np.fromiter(
            map(assign.__getitem__, itertools.chain.from_iterable(term_lists)),
            dtype=np.int64, count=total,
        )
        self.vocab = dict(assign)
        n_terms = len(self.vocab)
        self._post = [None] * n_terms
        self._arr = [None] * n_terms
        self.n_docs = n
        self._total_len = total
        self.freeze_avgdl()
        self._pending.clear()
        # one (slot, term) pair per distinct term of a slot, slot-major
        doc = np.repeat(np.arange(n, dtype=np.int64), lens)
        pair, tf = np.unique(doc * max(n_terms, 1) + flat, return_counts=True)
        slot_u, tid_u = np.divmod(pair, max(n_terms, 1))
        self._slot_bounds = np.concatenate(([0], np.cumsum(np.bincount(slot_u, minlength=n))))
        self._slot_tid, self._slot_tf = tid_u, tf
        k1, b = self.k1, self.b
        tf_f = tf.astype(np.float64)
        dl = lens[slot_u].astype(np.float64)
        val = tf_f * (k1 + 1.0) / (tf_f + k1 * (1.0 - b + b * dl / self.avgdl()))
        order = np.argsort(tid_u, kind="stable")
        df = np.bincount(tid_u, minlength=n_terms)
        self._df = df.tolist()
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
        """{term id: tf} of one slot (what ``coverage`` and ``remove`` need)."""
        d = self._slot_terms.get(slot)
        if d is None:
            lo, hi = self._slot_bounds[slot], self._slot_bounds[slot + 1]
            d = dict(zip(self._slot_tid[lo:hi].tolist(), self._slot_tf[lo:hi].tolist()))
            self._slot_terms[slot] = d
        return d

    def remove(self, slot: int) -> None:
        tids = self.slot_terms(slot)
        del self._slot_terms[slot]
        self.n_docs -= 1
        self._total_len -= sum(tids.values())
        for tid in tids:
            if self._postings(tid).pop(slot, None) is not None:
                self._df[tid] -= 1
            pend = self._pending.get(tid)
            if pend is not None:
                pend.pop(slot, None)

    def materialize(self) -> None:
        for tid in range(len(self._post)):
            if self._arr[tid] is None:
                self._array(tid)

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

    def coverage(self, qtids: set[int], slot_tids: dict[int, int]) -> float:
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
    def query_coverage(qmass: dict[int | None, float], slot_tids: dict[int, int]) -> float:
        """Share of the query's idf mass that the slot holds: how much of
        what the member asked this question explains."""
        tot = 0.0
        hit = 0.0
        for tid, w in qmass.items():
            tot += w
            if tid is not None and tid in slot_tids:
                hit += w
        return hit / tot if tot > 0 else 0.0

    def query_tids(self, terms: list[str]) -> set[int]:
        v = self.vocab
        return {v[t] for t in terms if t in v}


@lru_cache(maxsize=65536)
def _idf(n: int, df: int) -> float:
    """BM25 idf; memoised because re-ranking asks for the same (n, df) pairs constantly."""
    return math.log(1.0 + (n - df + 0.5) / (df + 0.5))
