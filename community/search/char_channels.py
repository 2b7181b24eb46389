"""The character and pinyin channels of a full build, loaded beside the word channels.

jieba (the word channels) is about half of a large build; the character and pinyin
channels need no jieba, so a build of many texts hands them to a short-lived helper
process and both halves run at once on two cores.  Only compact results come back:
each channel's vocabulary and term ids (4 bytes per occurrence, ``SlotTerms``) and one
pinyin string per text; the worker loads them into its channels.  (Shipping
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

from .index import BulkLoad, SlotTerms, feed_slots
from .tokenize import char_terms

__all__ = ["CHANNELS", "CharChannels", "load", "start"]

log = logging.getLogger(__name__)

CHANNELS = ("c", "p")
CharChannels = tuple[dict[str, SlotTerms], list[str]]  # per channel, pinyin per text


def load(texts: list[str], slot_text: list[int]) -> CharChannels:
    """Slot ``i`` holds ``texts[slot_text[i]]``; each distinct text is analysed once,
    at its first slot (``slot_text`` numbers texts in order of first appearance)."""
    pinyins: list[str] = []

    def terms_of(j: int) -> tuple[list[str], list[str]]:
        c_terms, p_terms, pinyin = char_terms(texts[j])
        pinyins.append(pinyin)  # texts are analysed in order, once each
        return c_terms, p_terms

    loads = [BulkLoad() for _ in CHANNELS]
    feed_slots(loads, slot_text, terms_of)
    return {ch: ld.result() for ch, ld in zip(CHANNELS, loads)}, pinyins


def _load_in_helper(texts: list[str], slot_text: list[int]) -> CharChannels:
    gc.disable()  # a throw-away process: nothing to collect that exit won't
    return load(texts, slot_text)


def _usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not Linux
        return os.cpu_count() or 1


def start(texts: list[str], slot_text: list[int], *, helper_min_texts: int | None) -> Callable[[], CharChannels]:
    """Begin loading; the returned function waits for (or computes) the result.

    A helper process is used when there are at least ``helper_min_texts`` texts (``None``
    or 0: never) and a second CPU to run it on."""
    if not helper_min_texts or len(texts) < helper_min_texts or _usable_cpus() < 2:
        return lambda: load(texts, slot_text)
    try:
        pool = ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
        future = pool.submit(_load_in_helper, texts, slot_text)
    except (OSError, RuntimeError) as e:  # no semaphores, no processes, interpreter exiting
        log.warning("index build helper could not start (%s); building in-process", e)
        return lambda: load(texts, slot_text)

    def result() -> CharChannels:
        try:
            return future.result()
        except (BrokenProcessPool, OSError) as e:
            log.warning("index build helper failed (%s); building in-process", e)
            return load(texts, slot_text)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)

    return result
