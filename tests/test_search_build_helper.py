"""A large build loads the character and pinyin channels in a helper process: the index
must be the same as one built in-process, and a helper that dies must not fail the build."""

from __future__ import annotations

import logging
import os

import pytest

from community.search import KBDoc, Matcher, MatcherConfig
from community.search import char_channels

from .test_search_matcher import KB

QUERIES = [
    "流量还剩多少",
    "查流量",
    "出国漫游怎么开",
    "话费余额",
    "CXYE",
    "微利货怎么还",
    "宽带坏了",
    "how to check data balance",
    "roaming abroad",
    "card declined",
    "忘記密碼",
    "完全无关的句子",
]


def _build(tmp_path, helper_min_texts: int | None) -> Matcher:
    m = Matcher(MatcherConfig(jieba_tmp_dir=str(tmp_path), build_helper_min_texts=helper_min_texts))
    m.build(KB)
    return m


def _results(m: Matcher) -> list[list[tuple[int, float]]]:
    return [[(r.item_id, r.score) for r in m.search(q, limit=5)] for q in QUERIES]


@pytest.fixture(scope="module")
def in_process(tmp_path_factory) -> list[list[tuple[int, float]]]:
    return _results(_build(tmp_path_factory.mktemp("jieba"), None))


def test_helper_builds_the_same_index(tmp_path, in_process) -> None:
    m = _build(tmp_path, helper_min_texts=1)
    assert _results(m) == in_process
    # the channels that came back from the helper take incremental updates
    m.upsert(KBDoc(50, "副卡怎么办理", variants=("加一张副卡",), answer="营业厅办理"))
    assert m.search("加副卡")[0].item_id == 50
    m.remove(1)
    assert all(r.item_id != 1 for r in m.search("查流量"))


def _die(*_args: object) -> None:
    os._exit(3)  # the helper process vanishes mid-build (OOM killer, kill -9)


def test_a_dead_helper_falls_back_to_building_in_process(tmp_path, in_process, monkeypatch, caplog) -> None:
    monkeypatch.setattr(char_channels, "_load_in_helper", _die)
    with caplog.at_level(logging.WARNING, logger="community.search.char_channels"):
        m = _build(tmp_path, helper_min_texts=1)
    assert _results(m) == in_process
    assert "building in-process" in caplog.text


def test_small_builds_need_no_helper(monkeypatch, tmp_path, in_process) -> None:
    def no_pool(*_a: object, **_k: object) -> None:
        raise AssertionError("a small build must not start a helper process")

    monkeypatch.setattr(char_channels, "ProcessPoolExecutor", no_pool)
    m = _build(tmp_path, helper_min_texts=10_000)
    assert _results(m) == in_process
