"""Ranking score and calibrated confidence.

Both are logistic-regression models over a few features, fitted on the dev
sets (BQ Corpus zh + Banking77 en) by

    python bench/faq_accuracy.py --fit \
        --entries ../shared/eval/faq/bq_dev_entries.csv --queries ../shared/eval/faq/bq_dev_queries.csv \
        --entries ../shared/eval/faq/banking77_dev_entries.csv --queries ../shared/eval/faq/banking77_dev_queries.csv

which prints the two coefficient tuples below.  Refit whenever a feature or
the first-stage scoring changes.  The confidence models count an answer as right when it is
the labelled entry *or a near-duplicate of it* (``duplicates.duplicate_groups``): BQ keeps
same-intent questions under several ids, and labels that call those wrong taught the model
timidity (bench/RESULTS.md, "Calibrated on being right").
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .tokenize import Analyzed

__all__ = [
    "RANK_FEATURES",
    "RANK_COEF",
    "rank_score",
    "CONF_FEATURES",
    "CONF_COEF",
    "conf_features",
    "confidence",
    "sigmoid",
    "MARGIN_CAP",
    "SEM_RANK_FEATURES",
    "SEM_RANK_COEF",
    "semantic_rank_score",
    "logit",
    "SEM_CONF_FEATURES",
    "SEM_CONF_COEF",
    "semantic_features",
    "semantic_confidence",
]

# Candidate features (per knowledge item, best of its question units):
#   bm25  - first-stage fused BM25 (word, word-bigram, char, pinyin channels),
#           each normalised by the query's idf mass
#   fuzz  - rapidfuzz ratio of the normalised texts (0..1)
#   pyfz  - rapidfuzz ratio of the fuzzy-pinyin strings (0..1)
#   ucov  - share of the unit's char-channel idf mass covered by the query
#   wcov  - share of the unit's word-channel idf mass covered by the query
#   qcov  - share of the query's char-channel idf mass found in the unit
#   qwcov - share of the query's word-channel idf mass found in the unit
RANK_FEATURES = ("bm25", "fuzz", "pyfz", "ucov", "wcov", "qcov", "qwcov")
# intercept first, then one weight per feature
RANK_COEF: tuple[float, ...] = (0.0000, 0.6752, 1.2926, 0.4568, 1.8027, 0.7846, 2.6144, 1.5964)

# Decision features (about one candidate of a query, normally the best):
#   margin - its rank-score lead over the best other candidate (capped)
#   share  - its softmax probability among the re-ranked candidates and a
#            "none of these" pseudo-candidate (NULL_RANK): how far ahead it
#            is of *all* the others, not only the runner-up
#   qcov   - share of the query (char idf mass) its best question explains
#   short  - 1 if the query has at most 2 content words
#   phr    - log2 of the item's number of question phrasings (capped): an
#            item known by several phrasings is matched more reliably, so a
#            curated KB (or one that learned from use) earns more confidence
#            than a bare one-question-per-item list
CONF_FEATURES = ("margin", "share", "qcov", "short", "phr")
CONF_COEF: tuple[float, ...] = (-1.9736, 0.7770, 0.3362, 0.4755, -0.1836, 0.2632)

MARGIN_CAP = 4.0
# A "none of these" pseudo-candidate in the share's softmax: few weak
# candidates must not look certain just because they have no rivals.
NULL_RANK = 5.0
PHRASINGS_CAP = 8


def conf_features(
    ranks: list[float], i: int, feats: tuple[float, ...], analyzed: Analyzed | None, n_questions: int = 1
) -> tuple[float, ...]:
    """Decision features of candidate ``i`` given every candidate's rank
    score (best first) and its rank features; shared by the matcher and the
    fitting script so that both always compute the same thing."""
    r = ranks[i]
    if len(ranks) == 1:
        other = r - MARGIN_CAP
    else:
        other = ranks[1] if i == 0 else ranks[0]
    margin = max(-MARGIN_CAP, min(MARGIN_CAP, r - other))
    share = 1.0 / (
        sum(math.exp(max(-50.0, min(50.0, x - r))) for x in ranks) + math.exp(max(-50.0, min(50.0, NULL_RANK - r)))
    )
    short = 1.0 if analyzed is not None and len(analyzed.words) <= 2 else 0.0
    phr = math.log2(min(max(n_questions, 1), PHRASINGS_CAP))
    return (margin, share, feats[5], short, phr)


# With a sentence encoder (MatcherConfig.semantic) the candidates are ordered by a fused
# score, fitted listwise (what top-1 needs) by the command above plus ``--semantic e5``:
#   lex   - the candidate's lexical confidence above, as a logit (clipped)
#   cos   - its best cosine to the query among its question phrasings, in hundredths
#   pcos  - the same against the phrasings embedded as passages (e5's ``passage:`` prefix; an
#           encoder with one view, e.g. an embeddings server, gives ``cos`` again)
SEM_RANK_FEATURES = ("lex", "cos", "pcos")
SEM_RANK_COEF: tuple[float, ...] = (0.0000, 0.4551, 0.1189, 0.3818)
# and the first candidate's confidence is a logistic model of
#   lex    - as above
#   gap    - its cosine minus the best cosine of any other candidate, in hundredths (clipped):
#            cosines of one encoder sit close together, and on this scale the fit's l2
#            penalty leaves it room
#   pgap   - the same for the passage view
#   first  - 1 if it is first by the cosine
#   pfirst - 1 if it is first by the passage view's cosine
#   lfirst - 1 if it is first in the lexical re-ranker's order
SEM_CONF_FEATURES = ("lex", "gap", "pgap", "first", "pfirst", "lfirst")
# The weights of lex, gap and first are the 2026-12-04 fit (``both``, 0.012 then, dropped);
# the passage and lexical-order terms are 0: refitted with them (``--fit --semantic e5``:
# -0.2154, 0.5502, 0.2606, 0.5167, -0.3201, -0.1694, -0.0432) Banking77 answered 15.6 % at
# 0.93 precision instead of 11.6 %, but the sample KB's self-calibration fell from 26 % to 20 %
# answered at 95 %: a model of one-phrasing dev sets, not of a curated KB (bench/RESULTS.md,
# "Issue 20", 2026-12-05).
SEM_CONF_COEF: tuple[float, ...] = (-0.2981, 0.4939, 0.4081, 0.0, -0.2339, 0.0, 0.0)
LOGIT_CAP = 8.0
GAP_CAP = 30.0


def logit(p: float) -> float:
    """A probability as a logit, clipped to +-LOGIT_CAP."""
    p = min(max(p, 1e-6), 1 - 1e-6)
    return max(-LOGIT_CAP, min(LOGIT_CAP, math.log(p / (1 - p))))


def semantic_rank_score(p_lex: float, cos: float, pcos: float) -> float:
    """The fused order's score of a candidate (higher first)."""
    c = SEM_RANK_COEF
    return c[0] + c[1] * logit(p_lex) + c[2] * 100.0 * cos + c[3] * 100.0 * pcos


def _gap(x: float, other: float | None) -> float:
    return 0.0 if other is None else max(-GAP_CAP, min(GAP_CAP, 100.0 * (x - other)))


def semantic_features(
    p_lex: float,
    cos: float | None,
    best_other: float | None,
    pcos: float | None = None,
    best_other_p: float | None = None,
    *,
    encoder_first: bool,
    passage_first: bool = False,
    lexical_first: bool = False,
) -> tuple[float, ...] | None:
    """None when the candidate has no vector yet: its lexical confidence stands. Without a
    passage view, ``pcos``/``best_other_p`` default to the cosine's."""
    if cos is None:
        return None
    if pcos is None:
        pcos, best_other_p, passage_first = cos, best_other, encoder_first
    return (
        logit(p_lex),
        _gap(cos, best_other),
        _gap(pcos, best_other_p),
        1.0 if encoder_first else 0.0,
        1.0 if passage_first else 0.0,
        1.0 if lexical_first else 0.0,
    )


def semantic_confidence(feats: tuple[float, ...]) -> float:
    c = SEM_CONF_COEF
    return sigmoid(c[0] + sum(w * f for w, f in zip(c[1:], feats)))


def sigmoid(x: float) -> float:
    if x >= 0:
        return 1.0 / (1.0 + math.exp(-x))
    e = math.exp(x)
    return e / (1.0 + e)


def rank_score(feats: tuple[float, ...]) -> float:
    c = RANK_COEF
    return c[0] + sum(w * f for w, f in zip(c[1:], feats))


def confidence(feats: tuple[float, ...]) -> float:
    c = CONF_COEF
    return sigmoid(c[0] + sum(w * f for w, f in zip(c[1:], feats)))
