"""Leave-one-out matching on our own sample knowledge base.

Usage: .venv/bin/python bench/sample_kb_loo.py [--semantic e5]

Each item's first question variant is held out as the query; the index holds the title and
the other variants (zh_CN and en items). Reports top-1 and, per answer threshold, the share
auto-answered and its precision — how the thresholds fitted on the public dev sets
(bench/faq_accuracy.py) behave on telecom questions written for this product.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
from community.search import KBDoc, Matcher, MatcherConfig  # noqa: E402


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--semantic", default=None, metavar="ENCODER",
                    help="add a sentence encoder to the matcher (MatcherConfig.semantic, e.g. e5)")
    args = ap.parse_args()
    data = yaml.safe_load((ROOT / "community" / "data" / "sample_kb.yaml").read_text(encoding="utf-8"))
    docs: list[KBDoc] = []
    queries: list[tuple[str, int, str]] = []
    for item in data:
        for loc in ("zh_CN", "en"):
            if loc in item:
                v = item[loc]["variants"]
                doc_id = len(docs) + 1
                docs.append(KBDoc(id=doc_id, title=item[loc]["title"], variants=tuple(v[1:]),
                                  answer=item[loc]["answer"], locale=loc, category=item["category"]))
                queries.append((v[0], doc_id, loc))
    matcher = Matcher(MatcherConfig(semantic=args.semantic))
    matcher.build(docs)
    results = [(matcher.search(q, locale=loc, limit=3), want) for q, want, loc in queries]
    top1 = sum(1 for r, want in results if r and r[0].item_id == want) / len(results)
    top3 = sum(1 for r, want in results if any(m.item_id == want for m in r)) / len(results)
    print(f"{len(results)} held-out questions; top-1 {top1:.3f}, top-3 {top3:.3f}\n")
    print("| answer threshold | answered share | precision |")
    print("| --- | --- | --- |")
    for th in (0.5, 0.6, 0.7, 0.75, 0.8, 0.85):
        answered = [(r, want) for r, want in results if r and r[0].score >= th]
        right = sum(1 for r, want in answered if r[0].item_id == want)
        print(f"| {th} | {len(answered) / len(results):.3f} | {right / max(len(answered), 1):.3f} |")


if __name__ == "__main__":
    main()
