"""Complaint intent on the labelled set: precision and recall of "urgent complaint".

    .venv/bin/python bench/complaints.py [--show-errors]

Reads tests/data/complaint_intent.tsv (label, locale, text) and runs
``community.inbox.intent.classify`` on each message. A message predicted "complaint"
becomes an urgent ticket; "question" and "none" go to the knowledge base. Also reports
how many questions *about* complaints are kept away from the ticket queue.
"""

from __future__ import annotations

import sys
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from community.inbox.intent import classify  # noqa: E402

DATA = ROOT / "tests" / "data" / "complaint_intent.tsv"
HOLDOUT = ROOT / "tests" / "data" / "complaint_intent_holdout.tsv"


@dataclass(frozen=True)
class Example:
    label: str
    locale: str
    text: str


def load(path: Path = DATA) -> list[Example]:
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        label, locale, text = line.split("\t", 2)
        out.append(Example(label, locale, text))
    return out


@dataclass(frozen=True)
class Scores:
    tp: int
    fp: int
    fn: int
    questions_kept: int  # questions about complaints not turned into tickets
    questions: int
    n: int

    @property
    def precision(self) -> float:
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        return self.tp / (self.tp + self.fn) if self.tp + self.fn else 1.0


def score(examples: list[Example], locale: str | None = None) -> tuple[Scores, list[tuple[Example, str]]]:
    tp = fp = fn = kept = questions = 0
    errors = []
    for ex in examples:
        if locale and ex.locale != locale:
            continue
        got = classify(ex.text)
        urgent, should = got == "complaint", ex.label == "complaint"
        tp += urgent and should
        fp += urgent and not should
        fn += should and not urgent
        if ex.label == "question":
            questions += 1
            kept += not urgent
        if urgent != should:
            errors.append((ex, got))
    n = sum(1 for ex in examples if not locale or ex.locale == locale)
    return Scores(tp, fp, fn, kept, questions, n), errors


def report(name: str, examples: list[Example]) -> None:
    counts = Counter(ex.label for ex in examples)
    print(f"{name}: {len(examples)} messages: " + ", ".join(f"{k} {v}" for k, v in sorted(counts.items())))
    print("| locale | n | precision | recall | questions kept from the queue |")
    print("| --- | --- | --- | --- | --- |")
    for loc in ("zh_CN", "zh_TW", "en", None):
        s, _ = score(examples, loc)
        print(f"| {loc or 'all'} | {s.n} | {s.precision:.3f} | {s.recall:.3f} | {s.questions_kept}/{s.questions} |")
    if "--show-errors" in sys.argv:
        for ex, got in score(examples)[1]:
            print(f"  {ex.label:9} -> {got:9} {ex.locale} {ex.text}")


def main() -> int:
    examples = load()
    report(DATA.name, examples)
    report(HOLDOUT.name, load(HOLDOUT))
    started = time.perf_counter()
    for _ in range(20):
        for ex in examples:
            classify(ex.text)
    per = (time.perf_counter() - started) / (20 * len(examples))
    print(f"classify: {per * 1e6:.1f} µs per message")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
