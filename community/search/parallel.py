"""Analysing a large knowledge base on every core, for full builds.

Analysis (jieba, pinyin, n-grams) is about half of a full build and is pure
per-text work, so a build of tens of thousands of texts hands it to worker
processes. Workers are *spawned* (never forked: a build runs in a thread
of a server whose other threads may hold locks) and build their own
``Analyzer`` from the parent's constructor arguments.
"""

from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from typing import Any

from .tokenize import Analyzed, Analyzer

__all__ = ["analyze_all", "PARALLEL_MIN_TEXTS"]

PARALLEL_MIN_TEXTS = 30_000  # below this, starting workers costs more than it saves
_CHUNK = 4_000

_worker_analyzer: Analyzer | None = None


def _init_worker(init_args: dict[str, Any]) -> None:
    global _worker_analyzer
    _worker_analyzer = Analyzer(**init_args)


def _analyze_chunk(texts: list[str]) -> list[Analyzed]:
    assert _worker_analyzer is not None
    return [_worker_analyzer.analyze(t) for t in texts]


def worker_count() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def analyze_all(analyzer: Analyzer, texts: list[str]) -> list[Analyzed]:
    """``[analyzer.analyze(t) for t in texts]``, on every core when it pays."""
    workers = worker_count()
    if len(texts) < PARALLEL_MIN_TEXTS or workers < 2:
        return [analyzer.analyze(t) for t in texts]
    chunks = [texts[i : i + _CHUNK] for i in range(0, len(texts), _CHUNK)]
    ctx = multiprocessing.get_context("spawn")
    try:
        with ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init_worker,
                                 initargs=(analyzer.init_args,)) as pool:
            out: list[Analyzed] = []
            for part in pool.map(_analyze_chunk, chunks):
                out.extend(part)
            return out
    except (OSError, RuntimeError):  # no processes allowed here: do it in this one
        return [analyzer.analyze(t) for t in texts]
