"""Leave-one-out matching on our own sample knowledge base.

Usage: .venv/bin/python bench/sample_kb_loo.py [--semantic e5]

Two passes, zh_CN and en items of community/data/sample_kb.yaml:

1. **First variant held out** (as since 2026-11-26): each item's first question variant — the
   most colloquial — is the query; the index holds the title and the other variants. Top-1,
   and per answer threshold the share auto-answered and its precision; then the production
   decision (``Matcher.assess`` + ``decision``: the cascade, single-option answers, out of
   domain) at the mode's default thresholds.
2. **Self-calibration** (``community.search.calibrate``, what the service runs at import and
   after edits): every phrasing of every item held out in turn from the full index; the
   lowest threshold keeping >= 95 % precision, and the share answered there.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path[:] = [str(ROOT)] + [p for p in sys.path if Path(p or ".").resolve() != ROOT / "bench"]
from community.search import KBDoc, Matcher, MatcherConfig  # noqa: E402
from community.search.calibrate import calibrate  # noqa: E402


def load(held_out: bool) -> tuple[list[KBDoc], list[tuple[str, int, str]]]:
    data = yaml.safe_load((ROOT / "community" / "data" / "sample_kb.yaml").read_text(encoding="utf-8"))
    docs: list[KBDoc] = []
    queries: list[tuple[str, int, str]] = []
    for item in data:
        for loc in ("zh_CN", "en"):
            if loc in item:
                v = item[loc]["variants"]
                doc_id = len(docs) + 1
                docs.append(
                    KBDoc(
                        id=doc_id,
                        title=item[loc]["title"],
                        variants=tuple(v[1:] if held_out else v),
                        answer=item[loc]["answer"],
                        locale=loc,
                        category=item["category"],
                    )
                )
                queries.append((v[0], doc_id, loc))
    return docs, queries


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument(
        "--semantic",
        default=None,
        metavar="ENCODER",
        help="add a sentence encoder to the matcher (MatcherConfig.semantic, e.g. e5)",
    )
    args = ap.parse_args()
    semantic = None if args.semantic in (None, "", "none") else args.semantic
    docs, queries = load(held_out=True)
    matcher = Matcher(MatcherConfig(semantic=semantic))
    matcher.build(docs)
    results = []
    consulted = 0
    for q, want, loc in queries:
        r = matcher.assess(q, locale=loc, limit=3)
        d = matcher.decision(r, q)
        consulted += r.consulted
        results.append((list(r.matches), want, d))
    n = len(results)
    top1 = sum(1 for r, want, _d in results if r and r[0].item_id == want) / n
    top3 = sum(1 for r, want, _d in results if any(m.item_id == want for m in r)) / n
    print(
        f"1. first variant held out: {n} questions; top-1 {top1:.3f}, top-3 {top3:.3f}; "
        f"encoder consulted for {consulted / n:.3f}\n"
    )
    print("| answer threshold | answered share | precision |")
    print("| --- | --- | --- |")
    for th in (0.3, 0.4, 0.5, 0.6, 0.7, 0.75, 0.8, 0.85):
        answered = [(r, want) for r, want, _d in results if r and r[0].score >= th]
        right = sum(1 for r, want in answered if r[0].item_id == want)
        print(f"| {th} | {len(answered) / n:.3f} | {right / max(len(answered), 1):.3f} |")
    ans = [(r, want, d) for r, want, d in results if d.kind == "answer"]
    tent = [x for x in ans if x[2].tentative]
    ok = sum(1 for r, want, _d in ans if r[0].item_id == want)
    ok_t = sum(1 for r, want, _d in tent if r[0].item_id == want)
    ood = sum(1 for _r, _w, d in results if d.reason == "out_of_domain")
    print(
        f"\nproduction decision at the default thresholds: answered {len(ans) / n:.3f} "
        f"(precision {ok / max(1, len(ans)):.3f}), of which single-option {len(tent) / n:.3f} "
        f"(precision {ok_t / max(1, len(tent)):.3f}); out of domain {ood / n:.3f}"
    )

    docs, _q = load(held_out=False)
    full = Matcher(MatcherConfig(semantic=semantic))
    full.build(docs)
    print("\n2. self-calibration (every phrasing held out in turn):")
    for enc in [False, True] if semantic else [False]:
        t = time.perf_counter()
        c = calibrate(full, encoder=enc)
        print("\n".join(c.lines()))
        print(f"  ({time.perf_counter() - t:.1f} s)")


if __name__ == "__main__":
    main()
