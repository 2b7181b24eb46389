"""A small in-memory BM25 inverted index with incremental updates.

Postings live in per-term dicts (the truth, cheap to update one document)
and are materialised as numpy arrays (fast to score).  An addition after
materialisation goes to a small per-term "pending" dict scored in Python,
until it outgrows 1/8 of the array, which is then rebuilt; a removal leaves
a stale array entry behind that the caller must zero out (the matcher
multiplies by a per-slot weight that is 0 for removed slots and never
reuses a slot number until the next full build).  Scores for all slots are
accumulated into one dense numpy vector, so a query costs
O(sum of posting lengths of its terms) vectorised work.
"""

from __future__ import annotations

import math
from collections import Counter

import numpy as np

__all__ = ["BM25Channel"]


class BM25Channel:
    def __init__(self, k1: float = 1.2, b: float = 0.75) -> None:
        self.k1 = k1
        self.b = b
        self.vocab: dict[str, int] = {}
        self._post: list[dict[int, float]] = []
        self._arr: list[tuple[np.ndarray, np.ndarray] | None] = []
        self._pending: dict[int, dict[int, float]] = {}
        self.n_docs = 0
        self._total_len = 0
        self._avgdl: float | None = None  # frozen at build; running mean before

    # ------------------------------------------------------------ updates
    def _tid(self, term: str) -> int:
        tid = self.vocab.get(term)
        if tid is None:
            tid = len(self._post)
            self.vocab[term] = tid
            self._post.append({})
            self._arr.append(None)
        return tid

    def avgdl(self) -> float:
        if self._avgdl is not None:
            return self._avgdl
        return max(1.0, self._total_len / self.n_docs) if self.n_docs else 1.0

    def freeze_avgdl(self) -> None:
        self._avgdl = max(1.0, self._total_len / self.n_docs) if self.n_docs else None

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
            self._post[tid][slot] = v
            arr = self._arr[tid]
            if arr is not None:
                pend = self._pending.setdefault(tid, {})
                pend[slot] = v
                if len(pend) > 32 + len(arr[0]) // 8:
                    self._arr[tid] = None
                    del self._pending[tid]
            out[tid] = f
        return out

    def remove(self, slot: int, tids: dict[int, int]) -> None:
        self.n_docs -= 1
        self._total_len -= sum(tids.values())
        for tid in tids:
            self._post[tid].pop(slot, None)
            pend = self._pending.get(tid)
            if pend is not None:
                pend.pop(slot, None)

    def materialize(self) -> None:
        for tid in range(len(self._post)):
            if self._arr[tid] is None:
                self._array(tid)

    # ------------------------------------------------------------ scoring
    def idf(self, tid: int | None) -> float:
        df = len(self._post[tid]) if tid is not None else 0
        n = max(self.n_docs, 1)
        return math.log(1.0 + (n - df + 0.5) / (df + 0.5))

    def _array(self, tid: int) -> tuple[np.ndarray, np.ndarray]:
        a = self._arr[tid]
        if a is None:
            p = self._post[tid]
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
            if tid is not None and not self._post[tid]:
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
        tot = 0.0
        hit = 0.0
        for tid in slot_tids:
            w = self.idf(tid)
            tot += w
            if tid in qtids:
                hit += w
        return hit / tot if tot > 0 else 0.0

    def query_tids(self, terms: list[str]) -> set[int]:
        v = self.vocab
        return {v[t] for t in terms if t in v}
