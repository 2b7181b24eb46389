"""bench/faq_accuracy.py keeps its contract (the last line is one JSON object) and its reading
aids (--misses, --versus) print what a reviewer judges, on a tiny made-up set."""

from __future__ import annotations

import csv
import importlib.util
import json
import os
import sys

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))

ENTRIES = [("e1", "怎么查话费余额"), ("e2", "流量包怎么退订"), ("e3", "宽带报修电话"), ("e4", "国际漫游怎么开通")]
QUERIES = [
    ("话费还剩多少怎么查", "e1"),
    ("退订流量包", "e2"),
    ("宽带坏了找谁修", "e3"),
    ("出国漫游如何开通", "e4"),
    ("查话费", "e3"),
    ("积分能换什么", ""),
]


def _bench():
    spec = importlib.util.spec_from_file_location("faq_accuracy", os.path.join(ROOT, "bench", "faq_accuracy.py"))
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod  # its dataclasses look their module up there
    spec.loader.exec_module(mod)
    return mod


def _csv(path, header, rows):
    with open(path, "w", encoding="utf-8", newline="") as fh:
        w = csv.writer(fh)
        w.writerow(header)
        w.writerows(rows)
    return str(path)


def test_contract_line_and_reading_aids(tmp_path, capsys):
    e = _csv(tmp_path / "t_entries.csv", ("id", "question"), ENTRIES)
    q = _csv(tmp_path / "t_queries.csv", ("query", "entry_id"), QUERIES)
    _bench().main(
        [
            "--entries",
            e,
            "--queries",
            q,
            "--misses",
            "5",
            "--versus",
            "5",
            "--answers",
            "5",
            "--groups",
            "lexical",
            "--jieba-tmp-dir",
            str(tmp_path / "jieba"),
        ]
    )
    out = capsys.readouterr().out.strip().splitlines()
    result = json.loads(out[-1])
    assert {"top1", "top3", "mrr10", "answered_share", "answered_precision", "p50_ms", "p99_ms", "n"} <= set(
        result
    )  # the contract's keys, and the added views:
    assert {"top1_equiv", "answered_precision_equiv", "consulted_share", "tentative_share"} <= set(result)
    assert result["top1_equiv"] >= result["top1"]
    assert result["consulted_share"] == 0.0  # no encoder in this run
    assert any("auto-answers" in line for line in out)
    assert result["n"] == len(QUERIES)
    # "查话费" is labelled e3 on purpose: the matcher answers e1, so it is a listed miss
    # with the labelled and the returned entry side by side
    assert result["top1"] < 1.0
    miss = [line for line in out if line.strip().startswith("查话费 |")]
    assert miss and "宽带报修电话" in miss[0] and "怎么查话费余额" in miss[0]
    assert any("top-1 misses" in line for line in out)
    assert any("disagreements" in line for line in out)
