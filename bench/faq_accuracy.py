#!/usr/bin/env python
"""FAQ matching accuracy (and latency) of community.search.Matcher.

Contract: /work/shared/eval/README.md ("The benchmark contract").

    python bench/faq_accuracy.py --entries E.csv --queries Q.csv           # offline
    python bench/faq_accuracy.py --entries E.csv --queries Q.csv --online  # learning from use
    python bench/faq_accuracy.py --entries E.csv --queries Q.csv --misses 50  # + a sample of misses
    python bench/faq_accuracy.py --items 10000                             # synthetic scale
    python bench/faq_accuracy.py --fit --entries A_e.csv --queries A_q.csv \
                                       --entries B_e.csv --queries B_q.csv  # refit confidence.py

Prints a human-readable table; the LAST line is one JSON object
{"top1","top3","mrr10","answered_share","answered_precision","p50_ms","p99_ms","n"} plus
"top1_equiv" and "answered_precision_equiv" (a near-duplicate of the labelled entry counts as
right: community/search/duplicates.py) and, offline, "consulted_share", "consulted_ms" (the
cascade's encoder use) and "tentative_share" (single-option answers)
(of the matcher; in --online mode of the second half of the replay).  Two
baselines measured in the same run are printed beside it: BM25 over jieba
search-mode tokens (bm25s) and rapidfuzz ``ratio``.  Needs no database.
"""

from __future__ import annotations

import argparse
import csv
import json
import os
import random
import statistics
import sys
import time
from dataclasses import dataclass

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
if ROOT not in sys.path:
    sys.path.insert(0, ROOT)

from community.search import KBDoc, Matcher, MatcherConfig  # noqa: E402


# ------------------------------------------------------------------ data
@dataclass
class EvalSet:
    name: str
    entry_ids: list[str]  # index = KB item id
    questions: list[str]
    queries: list[tuple[str, int | None]]


def _is_en(texts: list[str]) -> bool:
    sample = "".join(texts[:200])
    return sum(ch.isascii() for ch in sample) > 0.9 * max(1, len(sample))


def load_set(entries_path: str, queries_path: str) -> EvalSet:
    with open(entries_path, encoding="utf-8-sig", newline="") as fh:
        rows = list(csv.DictReader(fh))
    ids = [r["id"] for r in rows]
    qs = [r["question"] for r in rows]
    pos = {e: i for i, e in enumerate(ids)}
    queries = []
    with open(queries_path, encoding="utf-8-sig", newline="") as fh:
        for r in csv.DictReader(fh):
            eid = (r.get("entry_id") or "").strip()
            if eid and eid not in pos:
                raise SystemExit(f"query label {eid!r} not among the entries")
            queries.append((r["query"], pos[eid] if eid else None))
    name = os.path.basename(queries_path).replace("_queries.csv", "")
    return EvalSet(name, ids, qs, queries)


def kb_docs(es: EvalSet) -> list[KBDoc]:
    loc = "en" if _is_en(es.questions) else "zh_CN"
    return [KBDoc(id=i, title=q, variants=(q,), answer=es.entry_ids[i], locale=loc) for i, q in enumerate(es.questions)]


# ------------------------------------------------------- equivalent entries
def entry_groups(
    es: EvalSet, jieba_tmp_dir: str | None = None, matcher: Matcher | None = None, how: str = "auto"
) -> dict[int, int]:
    """Entry -> group of near-duplicate entries (``community.search.duplicates``), found with
    the encoder when it is installed (``how`` "auto"; "lexical": without), whatever the
    measured matcher is, so that the lexical and encoder runs are judged by the same groups."""
    from community.search.duplicates import duplicate_groups
    from community.search.semantic import SemanticUnavailable

    if how == "lexical":
        matcher = Matcher(MatcherConfig(jieba_tmp_dir=jieba_tmp_dir))
        matcher.build(kb_docs(es))
    elif matcher is None or matcher.config.semantic is None:
        try:
            matcher = Matcher(MatcherConfig(jieba_tmp_dir=jieba_tmp_dir, semantic="e5"))
        except SemanticUnavailable:
            matcher = Matcher(MatcherConfig(jieba_tmp_dir=jieba_tmp_dir))
        matcher.build(kb_docs(es))
    return duplicate_groups(matcher)


def right(r: list[int], y: int | None, groups: dict[int, int] | None) -> bool:
    """Top-1 is the labelled entry (``groups`` None) or one of its group."""
    if y is None or not r:
        return False
    return r[0] == y if groups is None else groups[r[0]] == groups[y]


# --------------------------------------------------------------- metrics
def metrics(
    ranked: list[list[int]],
    labels: list[int | None],
    answered: list[bool],
    lat_ms: list[float],
    groups: dict[int, int] | None = None,
) -> dict:
    lab = [(r, y) for r, y in zip(ranked, labels) if y is not None]
    n_lab = max(1, len(lab))
    top1 = sum(1 for r, y in lab if r[:1] == [y]) / n_lab
    top3 = sum(1 for r, y in lab if y in r[:3]) / n_lab
    mrr = sum(1.0 / (r[:10].index(y) + 1) for r, y in lab if y in r[:10]) / n_lab
    n_ans = sum(answered)
    ok = sum(1 for r, y, a in zip(ranked, labels, answered) if a and right(r, y, None))
    out = {
        "top1": round(top1, 4),
        "top3": round(top3, 4),
        "mrr10": round(mrr, 4),
        "answered_share": round(n_ans / max(1, len(ranked)), 4),
        "answered_precision": round(ok / n_ans, 4) if n_ans else 0.0,
        "p50_ms": 0.0,
        "p99_ms": 0.0,
        "n": len(ranked),
    }
    if groups is not None:  # the same, counting a near-duplicate of the labelled entry as right
        ok_eq = sum(1 for r, y, a in zip(ranked, labels, answered) if a and right(r, y, groups))
        out["top1_equiv"] = round(sum(1 for r, y in lab if right(r, y, groups)) / n_lab, 4)
        out["answered_precision_equiv"] = round(ok_eq / n_ans, 4) if n_ans else 0.0
    if lat_ms:
        s = sorted(lat_ms)
        out["p50_ms"] = round(statistics.median(s), 3)
        out["p99_ms"] = round(s[min(len(s) - 1, int(0.99 * len(s)))], 3)
    return out


# -------------------------------------------------------------- matcher
def run_matcher(es: EvalSet, cfg: MatcherConfig, online: bool = False):
    """Every query through the production cascade (``Matcher.assess`` + ``decision``): the
    lexical path, and the encoder only when the lexical path is not sure. ``answered``
    counts direct and single-option ("Not this one?") answers alike."""
    m = Matcher(cfg)
    t = time.perf_counter()
    m.build(kb_docs(es))
    build_s = time.perf_counter() - t
    ranked, answered, lat, scores = [], [], [], []
    stats = {"consulted": 0, "consulted_ms": 0.0, "tentative": 0}
    for q, y in es.queries:
        t = time.perf_counter()
        r = m.assess(q, limit=10)
        d = m.decision(r, q)
        ms = (time.perf_counter() - t) * 1000
        lat.append(ms)
        if r.consulted:
            stats["consulted"] += 1
            stats["consulted_ms"] += ms
        stats["tentative"] += d.tentative
        ranked.append([x.item_id for x in r.matches])
        scores.append(r.matches[0].score if r.matches else 0.0)
        answered.append(d.kind == "answer")
        if online and y is not None:
            m.add_variant(y, q)
    return ranked, answered, lat, scores, build_s, m, stats


# ------------------------------------------------------------- baselines
def _jieba_search_tokens(text: str) -> list[str]:
    import jieba

    return [t for t in jieba.lcut_for_search(text.lower()) if t.strip() and any(c.isalnum() for c in t)]


def run_bm25s(es: EvalSet):
    import bm25s
    import numpy as np

    corpus = [_jieba_search_tokens(q) for q in es.questions]
    vocab: dict[str, int] = {}
    ids = [[vocab.setdefault(t, len(vocab)) for t in doc] for doc in corpus]
    retr = bm25s.BM25()
    retr.index(bm25s.tokenization.Tokenized(ids=ids, vocab=vocab), show_progress=False)
    ranked, lat = [], []
    k = min(10, len(corpus))
    for q, _y in es.queries:
        t = time.perf_counter()
        toks = [vocab[x] for x in _jieba_search_tokens(q) if x in vocab]
        if toks:
            sc = retr.get_scores(toks)
            top = np.argsort(-sc, kind="stable")[:k]
            r = [int(i) for i in top if sc[i] > 0]
        else:
            r = []
        lat.append((time.perf_counter() - t) * 1000)
        ranked.append(r)
    return ranked, lat


def run_rapidfuzz(es: EvalSet):
    from rapidfuzz import fuzz, process, utils

    choices = es.questions
    ranked, lat = [], []
    for q, _y in es.queries:
        t = time.perf_counter()
        res = process.extract(q, choices, scorer=fuzz.ratio, processor=utils.default_process, limit=10)
        lat.append((time.perf_counter() - t) * 1000)
        ranked.append([r[2] for r in res])
    return ranked, lat


# ---------------------------------------------------------------- report
def fmt_row(name: str, d: dict) -> str:
    return (
        f"{name:<34} {d['top1']:>6.3f} {d['top3']:>6.3f} {d['mrr10']:>6.3f} "
        f"{d['answered_share']:>8.3f} {d['answered_precision']:>8.3f} "
        f"{d['p50_ms']:>7.3f} {d['p99_ms']:>7.3f} {d['n']:>6}"
    )


HEADER = (
    f"{'method':<34} {'top1':>6} {'top3':>6} {'mrr10':>6} {'ans.shr':>8} {'ans.prc':>8} "
    f"{'p50ms':>7} {'p99ms':>7} {'n':>6}"
)


def _sample_rows(title: str, rows: list[tuple[str, ...]], n: int, seed: int) -> None:
    sample = random.Random(seed).sample(rows, min(n, len(rows)))
    print(f"\n{len(sample)} of {len(rows)} {title} (seed {seed}):")
    for row in sample:
        print("  " + " | ".join(row))


def _first(es: EvalSet, r: list[int]) -> str:
    return es.questions[r[0]] if r else "(nothing)"


def show_misses(es: EvalSet, ranked: list[list[int]], n: int, seed: int) -> None:
    """Labelled queries whose top-1 is not the labelled entry, beside the entry returned
    instead: read them to tell a wrong answer from a duplicate entry that the labels count
    as wrong (see bench/RESULTS.md, "Reading the misses")."""
    rows = [
        (q, es.questions[y], _first(es, r), str(r.index(y) + 1 if y in r else "-"))
        for (q, y), r in zip(es.queries, ranked)
        if y is not None and r[:1] != [y]
    ]
    _sample_rows("top-1 misses: query | labelled entry | returned first | rank of the labelled", rows, n, seed)


def show_answers(
    es: EvalSet, ranked: list[list[int]], answered: list[bool], n: int, seed: int, groups: dict[int, int] | None = None
) -> None:
    """Queries the matcher auto-answered, beside the labelled entry: read them to judge the
    precision members see (a label-miss may be an equivalent entry)."""
    rows = [
        (
            q,
            _first(es, r),
            es.questions[y] if y is not None else "(not in KB)",
            "label" if right(r, y, None) else ("group" if right(r, y, groups) else "miss"),
        )
        for (q, y), r, a in zip(es.queries, ranked, answered)
        if a
    ]
    _sample_rows("auto-answers: query | answered with | labelled entry | by label/group/miss", rows, n, seed)


def show_versus(es: EvalSet, ranked: list[list[int]], other: list[list[int]], n: int, seed: int) -> None:
    """Queries (labelled or not) where the matcher and the BM25 baseline put different entries
    first, for a side-by-side judgement that does not depend on the labels."""
    rows = [
        (q, _first(es, r), _first(es, o), es.questions[y] if y is not None else "(not in KB)")
        for (q, y), r, o in zip(es.queries, ranked, other)
        if r[:1] != o[:1]
    ]
    _sample_rows("disagreements: query | matcher first | BM25 first | labelled entry", rows, n, seed)


def threshold_sweep(scores, ranked, labels, title="matcher, offline", groups=None):
    print(f"\nanswer-threshold sweep ({title}; precision by label and counting near-duplicates):")
    print(f"  {'thr':>5} {'answered':>9} {'precision':>9} {'equiv':>7}")
    for thr in (0.2, 0.3, 0.4, 0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9):
        ans = [s >= thr for s in scores]
        n = sum(ans)
        ok = sum(1 for a, r, y in zip(ans, ranked, labels) if a and right(r, y, None))
        ok_eq = sum(1 for a, r, y in zip(ans, ranked, labels) if a and right(r, y, groups)) if groups else 0
        print(
            f"  {thr:>5.2f} {n / max(1, len(ans)):>9.3f} {ok / n if n else 0:>9.3f} "
            f"{ok_eq / n if n and groups else 0:>7.3f}"
        )


def evaluate(args) -> dict:
    if len(args.entries) != 1 or len(args.queries) != 1:
        raise SystemExit("give exactly one --entries and one --queries (several only with --fit)")
    es = load_set(args.entries[0], args.queries[0])
    cfg = MatcherConfig(jieba_tmp_dir=args.jieba_tmp_dir, semantic=args.semantic)
    labels = [y for _q, y in es.queries]
    n = len(es.queries)
    print(
        f"set {es.name}: {len(es.questions)} entries, {n} queries "
        f"({sum(1 for y in labels if y is None)} not in KB); "
        f"answer_threshold={cfg.answer_threshold} suggest_threshold={cfg.suggest_threshold}"
    )
    ranked, answered, lat, scores, build_s, m, stats = run_matcher(es, cfg, online=False)
    groups = entry_groups(es, args.jieba_tmp_dir, m, args.groups)
    n_groups = len(set(groups.values()))
    print(f"near-duplicate groups: {len(groups) - n_groups} entries merged into others, {n_groups} distinct answers")
    ours = metrics(ranked, labels, answered, lat, groups)
    ours["consulted_share"] = round(stats["consulted"] / max(1, n), 4)
    ours["consulted_ms"] = round(stats["consulted_ms"] / max(1, stats["consulted"]), 3)
    ours["tentative_share"] = round(stats["tentative"] / max(1, n), 4)
    rows = [("matcher (offline)", ours)]
    result = ours
    if args.online:
        o_ranked, o_ans, o_lat, o_scores, _b, _m, _st = run_matcher(es, cfg, online=True)
        h = n // 2
        threshold_sweep(o_scores[h:], o_ranked[h:], labels[h:], "matcher --online, 2nd half", groups)
        second = metrics(o_ranked[h:], labels[h:], o_ans[h:], o_lat[h:], groups)
        rows.append(("matcher offline, 2nd half", metrics(ranked[h:], labels[h:], answered[h:], lat[h:], groups)))
        rows.append(("matcher --online, 2nd half", second))
        result = second
    if not args.no_baselines:
        b_ranked, b_lat = run_bm25s(es)
        rows.append(("baseline BM25 jieba-search (bm25s)", metrics(b_ranked, labels, [False] * n, b_lat)))
        f_ranked, f_lat = run_rapidfuzz(es)
        rows.append(("baseline rapidfuzz ratio", metrics(f_ranked, labels, [False] * n, f_lat)))
        if args.versus:
            show_versus(es, ranked, b_ranked, args.versus, args.seed)
    print(f"matcher build: {build_s * 1000:.0f} ms")
    if args.misses:
        show_misses(es, ranked, args.misses, args.seed)
    if args.answers:
        show_answers(es, ranked, answered, args.answers, args.seed, groups)
    threshold_sweep(scores, ranked, labels, groups=groups)
    print(
        f"\nencoder consulted for {ours['consulted_share']:.3f} of queries, "
        f"{ours['consulted_ms']:.1f} ms each (lexical + encoder, inline); "
        f"single-option answers {ours['tentative_share']:.3f}"
    )
    print()
    print(HEADER)
    for name, d in rows:
        print(fmt_row(name, d))
    print(
        f"equivalence view (a near-duplicate of the labelled entry counts as right): "
        f"top1 {ours['top1_equiv']:.3f}, answered precision {ours['answered_precision_equiv']:.3f}"
    )
    if not args.no_baselines:
        base = rows[-2][1]["top1"]
        if base:
            print(f"top1 vs BM25 baseline: x{ours['top1'] / base:.2f}")
    return result


# ------------------------------------------------------------------- fit
def _logreg(X, y, w=None, l2=1e-2, iters=50):
    """Logistic regression by Newton's method (numpy only); X without bias."""
    import numpy as np

    X = np.hstack([np.ones((X.shape[0], 1)), X])
    y = np.asarray(y, dtype=float)
    w_s = np.ones(len(y)) if w is None else np.asarray(w, dtype=float)
    beta = np.zeros(X.shape[1])
    for _ in range(iters):
        p = 1.0 / (1.0 + np.exp(-(X @ beta)))
        g = X.T @ (w_s * (p - y)) + l2 * np.r_[0, beta[1:]]
        H = (X * (w_s * p * (1 - p))[:, None]).T @ X + l2 * np.diag(np.r_[0, np.ones(len(beta) - 1)])
        step = np.linalg.solve(H, g)
        beta -= step
        if np.abs(step).max() < 1e-8:
            break
    return beta


def _condlogit(groups, l2=1e-2, iters=60):
    """Conditional (softmax-over-candidates) logit by Newton's method: the
    listwise objective log P(right item | the query's candidates), i.e. what
    top-1 accuracy needs.  ``groups``: list of (X [n_cand x k], gold index, weight).
    Steps are halved until the objective does not rise (a full Newton step can overshoot
    when features have large ranges, e.g. cosines in hundredths)."""
    import numpy as np

    k = groups[0][0].shape[1]

    def objective(b):
        v = 0.5 * l2 * float(b @ b)
        for X, gi, w in groups:
            s = X @ b
            top = s.max()
            v += w * (top + np.log(np.exp(s - top).sum()) - s[gi])
        return v

    beta = np.zeros(k)
    f = objective(beta)
    for _ in range(iters):
        g = l2 * beta
        H = l2 * np.eye(k)
        for X, gi, w in groups:
            s = X @ beta
            p = np.exp(s - s.max())
            p /= p.sum()
            mu = p @ X
            g += w * (mu - X[gi])
            H += w * ((X * p[:, None]).T @ X - np.outer(mu, mu))
        step = np.linalg.solve(H, g)
        t = 1.0
        while True:
            nb = beta - t * step
            nf = objective(nb)
            if nf <= f or t < 1e-6:
                break
            t /= 2
        beta, f = nb, nf
        if np.abs(t * step).max() < 1e-8:
            break
    return beta


def fit(args) -> None:
    import numpy as np

    from community.search import confidence as conf

    if len(args.entries) != len(args.queries):
        raise SystemExit("--entries and --queries must pair up")
    sets = [load_set(e, q) for e, q in zip(args.entries, args.queries)]
    # a near-duplicate of the labelled entry is a right answer (community/search/duplicates.py)
    groups = {es.name: entry_groups(es, args.jieba_tmp_dir, how=args.groups) for es in sets}
    cfg = MatcherConfig(jieba_tmp_dir=args.jieba_tmp_dir)  # the lexical models first
    # 1) ranking model: listwise (conditional) logit over re-ranked candidates
    #    of the cold KB
    X, per_query = [], []
    # optional per-set weights of the confidence fit (--conf-weight SET=W)
    weights = dict(w.split("=", 1) for w in args.conf_weight)
    weights = {k: float(v) for k, v in weights.items()}
    for es in sets:
        wq = 1.0 / len(es.queries)
        for online in (False, True):
            m = Matcher(cfg)
            m.build(kb_docs(es))
            half = len(es.queries) // 2
            for k, (q, y) in enumerate(es.queries):
                from bot.core.normalize import normalize

                cands, a = m._candidates(normalize(q), None)
                if online and y is not None:
                    m.add_variant(y, q)
                if online and k < half:
                    continue  # the replay's first half only teaches variants
                nq = {iid: m.n_questions(iid) for _r, iid, _f in cands}
                per_query.append((cands, a, y, wq, es.name, nq, groups[es.name]))
                if online or y is None or len(cands) < 2 or not any(c[1] == y for c in cands):
                    continue
                gi = [c[1] for c in cands].index(y)
                X.append((np.array([c[2] for c in cands]), gi, wq))
    beta = np.r_[0.0, _condlogit(X)]
    print("RANK_FEATURES =", conf.RANK_FEATURES)
    print("RANK_COEF: tuple[float, ...] = (" + ", ".join(f"{b:.4f}" for b in beta) + ")")
    # 2) confidence model over the best candidate of every query, on the
    # cold KB (one question per item) and on the second half of the online
    # replay (items that learned phrasings, like a curated KB)
    Xc, Yc, Wc = [], [], []
    for cands, a, y, wq, set_name, nq, grp in per_query:
        if not cands:
            continue
        rs = sorted(((float(beta[0] + np.dot(beta[1:], f)), iid, f) for _r, iid, f in cands), key=lambda x: -x[0])
        Xc.append(conf.conf_features([x[0] for x in rs], 0, rs[0][2], a, nq[rs[0][1]]))
        Yc.append(1.0 if right([rs[0][1]], y, grp) else 0.0)
        Wc.append(wq * weights.get(set_name, 1.0))
    gamma = _logreg(np.array(Xc), Yc, Wc)
    print("CONF_FEATURES =", conf.CONF_FEATURES)
    print("CONF_COEF: tuple[float, ...] = (" + ", ".join(f"{g:.4f}" for g in gamma) + ")")
    if args.semantic:
        fit_semantic(sets, MatcherConfig(jieba_tmp_dir=args.jieba_tmp_dir, semantic=args.semantic), weights, groups)


def fit_semantic(
    sets: list[EvalSet], cfg: MatcherConfig, weights: dict[str, float], groups: dict[str, dict[int, int]]
) -> None:
    """The encoder stage's models (``confidence.SEM_RANK_COEF`` and ``SEM_CONF_COEF``). Uses
    the lexical coefficients in confidence.py: refit those first and paste them in.

    1. The fused order, listwise (conditional logit, like the re-ranker) over every candidate
       of the cold KB's queries whose labelled entry is among them: the lexical confidence's
       logit and the cosines of the encoder's two views.
    2. The confidence of the first candidate in that order, on the cold KB and on the online
       replay's second half, for the queries the lexical path is not sure of (only those
       reach the encoder in the cascade); right = the labelled entry or a near-duplicate."""
    import numpy as np

    from community.search import confidence as conf
    from bot.core.normalize import normalize

    qvecs: dict[tuple[str, int], object] = {}
    rank_groups = []
    for es in sets:
        wq = weights.get(es.name, 1.0) / len(es.queries)
        m = Matcher(cfg)
        m.build(kb_docs(es))
        for k, (q, y) in enumerate(es.queries):
            qvecs[es.name, k] = qv = m.query_vector(q)
            if y is None or qv is None:
                continue
            cands, a = m._candidates(normalize(q), None, qv)
            ranks = [c[0] for c in cands]
            rows, ids = [], []
            for i, (_r, iid, f) in enumerate(cands):
                views = m._item_cosines(qv, iid)
                if views is None:
                    continue
                p = conf.confidence(conf.conf_features(ranks, i, f, a, m.n_questions(iid)))
                rows.append((conf.logit(p), 100.0 * views[0], 100.0 * views[1]))
                ids.append(iid)
            if len(ids) >= 2 and y in ids:
                x = np.array(rows)  # centred per query: the same softmax, a better-conditioned fit
                rank_groups.append((x - x.max(axis=0), ids.index(y), wq))
    beta = _condlogit(rank_groups, l2=1e-4)
    conf.SEM_RANK_COEF = (0.0, *(float(b) for b in beta))
    print("SEM_RANK_FEATURES =", conf.SEM_RANK_FEATURES)
    print("SEM_RANK_COEF: tuple[float, ...] = (" + ", ".join(f"{b:.4f}" for b in conf.SEM_RANK_COEF) + ")")
    X, Y, W = [], [], []
    for es in sets:
        half = len(es.queries) // 2
        for online in (False, True):
            m = Matcher(cfg)
            m.build(kb_docs(es))
            consulted = []
            for k, (q, y) in enumerate(es.queries):
                sure = m._lexical_sure(m._lexical(q, None, 3))
                ranked, _ranks, _a = m._ranked(normalize(q), None, qvecs[es.name, k])  # type: ignore[arg-type]
                if online and y is not None:
                    m.add_variant(y, q)
                if (online and k < half) or sure or not ranked or ranked[0][4] is None:
                    continue
                consulted.append((ranked[0][4], 1.0 if right([ranked[0][0]], y, groups[es.name]) else 0.0))
            for feats, ok in consulted:
                X.append(feats)
                Y.append(ok)
                W.append(weights.get(es.name, 1.0) / len(consulted))
    gamma = _logreg(np.array(X), Y, W)
    print("SEM_CONF_FEATURES =", conf.SEM_CONF_FEATURES)
    print("SEM_CONF_COEF: tuple[float, ...] = (" + ", ".join(f"{b:.4f}" for b in gamma) + ")")


# ------------------------------------------------------------- synthetic
def synthetic(args) -> dict:
    import jieba

    rnd = random.Random(7)
    jieba.initialize()
    words = [w for w, f in sorted(jieba.dt.FREQ.items(), key=lambda x: -x[1])[:20000] if len(w) >= 2 and f > 0][:6000]
    n = args.items

    def title() -> str:
        return "".join(rnd.choice(words) for _ in range(rnd.randint(3, 6)))

    docs = [KBDoc(id=i, title=title(), variants=(title(),), answer="", locale="zh_CN") for i in range(n)]
    queries = []
    for _ in range(args.n_queries):
        d = docs[rnd.randrange(n)]
        t = list(d.title)
        if len(t) > 4:
            del t[rnd.randrange(len(t))]  # a dropped character
        queries.append("请问" + "".join(t) + "怎么办")
    cfg = MatcherConfig(jieba_tmp_dir=args.jieba_tmp_dir, semantic=args.semantic)
    m = Matcher(cfg)
    t0 = time.perf_counter()
    m.build(docs)
    build_s = time.perf_counter() - t0
    for q in queries[:50]:
        m.search(q)  # warm-up
    lat = []
    for q in queries:
        t = time.perf_counter()
        m.search(q, limit=5)
        lat.append((time.perf_counter() - t) * 1000)
    # baseline in the same run: bm25s over jieba search tokens
    es = EvalSet("synthetic", [str(d.id) for d in docs], [d.title for d in docs], [(q, None) for q in queries])
    t0 = time.perf_counter()
    _r, b_lat = run_bm25s(es)
    b_total = time.perf_counter() - t0
    # incremental costs
    up = []
    for i in range(200):
        d = KBDoc(id=n + i, title=title(), variants=(title(),), locale="zh_CN")
        t = time.perf_counter()
        m.upsert(d)
        up.append((time.perf_counter() - t) * 1000)
    repl = []
    for i in range(200):
        d = KBDoc(id=rnd.randrange(n), title=title(), locale="zh_CN")
        t = time.perf_counter()
        m.upsert(d)
        repl.append((time.perf_counter() - t) * 1000)
    av = []
    for i in range(200):
        t = time.perf_counter()
        m.add_variant(rnd.randrange(n), title())
        av.append((time.perf_counter() - t) * 1000)
    lat_after = []
    for q in queries[:500]:
        t = time.perf_counter()
        m.search(q, limit=5)
        lat_after.append((time.perf_counter() - t) * 1000)
    s = sorted(lat)
    bs = sorted(b_lat)
    p = lambda xs, q: xs[min(len(xs) - 1, int(q * len(xs)))]  # noqa: E731
    print(f"synthetic KB: {n} items x 2 questions (title + variant), {len(queries)} queries")
    print(f"{'what':<46} {'value':>10}")
    print(f"{'build (full index) s':<46} {build_s:>10.2f}")
    print(f"{'query p50 ms (matcher)':<46} {statistics.median(s):>10.3f}")
    print(f"{'query p99 ms (matcher)':<46} {p(s, 0.99):>10.3f}")
    print(f"{'query p50 ms (baseline bm25s get_scores)':<46} {statistics.median(bs):>10.3f}")
    print(f"{'query p99 ms (baseline bm25s get_scores)':<46} {p(bs, 0.99):>10.3f}")
    print(f"{'baseline bm25s tokenise+index+query s':<46} {b_total:>10.2f}")
    print(f"{'upsert new item ms (mean / p99)':<46} {statistics.mean(up):>5.3f}/{p(sorted(up), 0.99):.3f}")
    print(f"{'upsert replace item ms (mean / p99)':<46} {statistics.mean(repl):>5.3f}/{p(sorted(repl), 0.99):.3f}")
    print(f"{'add_variant ms (mean / p99)':<46} {statistics.mean(av):>5.3f}/{p(sorted(av), 0.99):.3f}")
    print(f"{'query p99 ms after 600 incremental updates':<46} {p(sorted(lat_after), 0.99):>10.3f}")
    return {
        "items": n,
        "build_s": round(build_s, 3),
        "p50_ms": round(statistics.median(s), 3),
        "p99_ms": round(p(s, 0.99), 3),
        "baseline_p99_ms": round(p(bs, 0.99), 3),
        "upsert_ms": round(statistics.mean(up), 3),
        "add_variant_ms": round(statistics.mean(av), 3),
        "n": len(queries),
    }


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--entries", action="append", default=[])
    ap.add_argument("--queries", action="append", default=[])
    ap.add_argument("--online", action="store_true", help="replay in order, learning each label as a variant")
    ap.add_argument("--fit", action="store_true", help="fit the ranking/confidence coefficients")
    ap.add_argument("--items", type=int, default=0, help="synthetic scale mode with N items")
    ap.add_argument("--n-queries", type=int, default=2000)
    ap.add_argument("--no-baselines", action="store_true")
    ap.add_argument(
        "--semantic",
        default=None,
        metavar="ENCODER",
        help="add a sentence encoder to the matcher (MatcherConfig.semantic, e.g. e5)",
    )
    ap.add_argument(
        "--misses", type=int, default=0, metavar="N", help="print a random sample of N offline top-1 misses to read"
    )
    ap.add_argument(
        "--groups",
        choices=("auto", "lexical"),
        default="auto",
        help="near-duplicate groups found with the encoder when installed (auto) or lexically",
    )
    ap.add_argument(
        "--answers", type=int, default=0, metavar="N", help="print a random sample of N offline auto-answers to read"
    )
    ap.add_argument(
        "--versus",
        type=int,
        default=0,
        metavar="N",
        help="print a random sample of N queries where the matcher and BM25 disagree",
    )
    ap.add_argument("--seed", type=int, default=1, help="--misses/--versus: sample seed")
    ap.add_argument(
        "--conf-weight",
        action="append",
        default=[],
        metavar="SET=W",
        help="--fit: weight of a set in the confidence fit (e.g. bq_dev=0.2)",
    )
    ap.add_argument("--jieba-tmp-dir", default=os.path.join(ROOT, ".cache", "jieba"))
    args = ap.parse_args(argv)
    if args.semantic in ("none", ""):
        args.semantic = None
    import logging

    import jieba

    jieba.setLogLevel(logging.WARNING)
    os.makedirs(args.jieba_tmp_dir, exist_ok=True)
    jieba.dt.tmp_dir = args.jieba_tmp_dir
    if args.fit:
        fit(args)
        return
    if args.items:
        res = synthetic(args)
    else:
        if not args.entries or not args.queries:
            ap.error("--entries and --queries are required (or --items N)")
        res = evaluate(args)
    print(json.dumps(res))


if __name__ == "__main__":
    main()
