"""The character and pinyin channels of a full build, loaded beside the word channels.

jieba (the word channels) is about half of a large build; the character and pinyin
channels need no jieba, so a build of many texts hands them to a short-lived helper
process and both halves run at once on two cores.  Only compact results come back:
each channel's vocabulary and numpy arrays, and one pinyin string per text.  (Shipping
per-text term lists back instead cost as much as the analysis saved: bench/RESULTS.md.)

The helper is spawned (never forked: the index is built in a thread of the web
process) for one build and gone after it.  If it cannot start or dies, the same work
runs in-process: a build never fails for want of a helper.
"""

from __future__ import annotations

import gc
import logging
import multiprocessing
import os
from collections.abc import Callable
from concurrent.futures import ProcessPoolExecutor
from concurrent.futures.process import BrokenProcessPool

from .index import BM25Channel
from .tokenize import char_terms

__all__ = ["CHANNELS", "CharChannels", "load", "start"]

log = logging.getLogger(__name__)

CHANNELS = ("c", "p")
CharChannels = tuple[dict[str, BM25Channel], list[str]]  # channels, pinyin per text


def load(
    texts: list[str], slot_text: list[int], params: dict[str, tuple[float, float]]
) -> CharChannels:
    """Analyse each distinct text once and bulk-load slot ``i`` with ``texts[slot_text[i]]``."""
    analysed = [char_terms(t) for t in texts]
    channels: dict[str, BM25Channel] = {}
    for i, ch in enumerate(CHANNELS):
        channel = BM25Channel(*params[ch])
        channel.bulk_load([analysed[j][i] for j in slot_text])
        channels[ch] = channel
    return channels, [a[2] for a in analysed]


def _load_in_helper(
    texts: list[str], slot_text: list[int], params: dict[str, tuple[float, float]]
) -> CharChannels:
    gc.disable()  # a throw-away process: nothing to collect that exit won't
    return load(texts, slot_text, params)


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def start(
    texts: list[str],
    slot_text: list[int],
    params: dict[str, tuple[float, float]],
    *,
    helper_min_texts: int | None,
) -> Callable[[], CharChannels]:
    """Begin loading; the returned function waits for (or computes) the result.

    A helper process is used when there are at least ``helper_min_texts`` texts (``None``
    or 0: never) and a second CPU to run it on."""
    if not helper_min_texts or len(texts) < helper_min_texts or _usable_cpus() < 2:
        return lambda: load(texts, slot_text, params)
    try:
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        future = pool.submit(_load_in_helper, texts, slot_text, params)
    except (OSError, RuntimeError) as e:  # no semaphores, no processes, interpreter exiting
        log.warning("index build helper could not start (%s); building in-process", e)
        return lambda: load(texts, slot_text, params)

    def result() -> CharChannels:
        try:
            return future.result()
        except (BrokenProcessPool, OSError) as e:
            log.warning("index build helper failed (%s); building in-process", e)
            return load(texts, slot_text, params)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    return result
