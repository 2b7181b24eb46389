"""Ranking score and calibrated confidence.

Both are logistic-regression models over a few features, fitted on the dev
sets (BQ Corpus zh + Banking77 en) by

    python bench/faq_accuracy.py --fit \
        --entries ../shared/eval/faq/bq_dev_entries.csv --queries ../shared/eval/faq/bq_dev_queries.csv \
        --entries ../shared/eval/faq/banking77_dev_entries.csv --queries ../shared/eval/faq/banking77_dev_queries.csv

which prints the two coefficient tuples below.  Refit whenever a feature or
the first-stage scoring changes.
"""

from __future__ import annotations

import math

__all__ = [
    "RANK_FEATURES", "RANK_COEF", "rank_score",
    "CONF_FEATURES", "CONF_COEF", "confidence", "sigmoid",
]

# Candidate features (per knowledge item, best of its question units):
#   bm25  - first-stage fused BM25 (word, word-bigram, char, pinyin channels),
#           each normalised by the query's idf mass
#   fuzz  - rapidfuzz ratio of the normalised texts (0..1)
#   pyfz  - rapidfuzz ratio of the fuzzy-pinyin strings (0..1)
#   ucov  - share of the unit's char-channel idf mass covered by the query
#   wcov  - share of the unit's word-channel idf mass covered by the query
RANK_FEATURES = ("bm25", "fuzz", "pyfz", "ucov", "wcov")
# intercept first, then one weight per feature
RANK_COEF: tuple[float, ...] = (0.0000, 2.2452, 1.5201, 0.3701, 1.9576, 0.4252)

# Decision features (about the best candidate of a query):
#   top    - rank score (logit) of the candidate
#   margin - its rank-score lead over the best other candidate (capped)
#   cjk    - 1 if the query contains CJK characters
#   short  - 1 if the query has at most 2 content words
CONF_FEATURES = ("top", "margin", "cjk", "short")
CONF_COEF: tuple[float, ...] = (-1.3794, 0.0679, 0.6348, -1.3145, -0.0727)

MARGIN_CAP = 4.0


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
