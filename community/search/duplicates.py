"""Knowledge items that ask the same question: one answer, not rivals.

A knowledge base grown by several people holds near-duplicates ("最高额度是多少" and
"额度最大多大" under two ids). Matching either is right, and counting one as wrong teaches
a confidence model timidity. Two items are taken for one answer when

- they share a question phrasing (after normalisation), or
- with the item's own phrasings held out, the lexical re-ranker and the sentence encoder
  both put the same other item first, the encoder with a cosine of at least
  :data:`MIN_COSINE` and the lexical confidence at least :data:`MIN_LEXICAL`; or, without
  an encoder, the lexical confidence alone is at least :data:`MIN_LEXICAL_ALONE`.

Used by the benchmark (``top1_equiv``, ``answered_precision_equiv``), by the confidence fit
(a duplicate of the label counts as right) and by the knowledge base's self-calibration.
Groups are closed transitively (union-find), so chains are possible: the bars are high.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .matcher import Matcher

__all__ = ["duplicate_groups", "MIN_COSINE", "MIN_LEXICAL", "MIN_LEXICAL_ALONE"]

MIN_COSINE = 0.93
MIN_LEXICAL = 0.30
MIN_LEXICAL_ALONE = 0.90


def duplicate_groups(
    m: "Matcher",
    *,
    min_cosine: float = MIN_COSINE,
    min_lexical: float = MIN_LEXICAL,
    min_lexical_alone: float = MIN_LEXICAL_ALONE,
) -> dict[int, int]:
    """item id -> group id (the smallest item id of its group) for every indexed item.
    Blocking: one lexical search per item (and encoder look-ups of vectors already made)."""
    ids = m.item_ids
    parent = {i: i for i in ids}

    def find(x: int) -> int:
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    def union(a: int, b: int) -> None:
        ra, rb = find(a), find(b)
        if ra != rb:
            parent[max(ra, rb)] = min(ra, rb)

    by_text: dict[str, int] = {}
    for iid in ids:
        for _slot, text in m.question_units(iid):
            other = by_text.setdefault(text, iid)
            if other != iid:
                union(iid, other)
    for iid in ids:
        units = m.question_units(iid)
        if not units:
            continue
        skip = frozenset(s for s, _t in units)
        slot, text = units[0]
        locale = m.item_locale(iid)
        lexical = m.search(text, locale=locale, limit=1, skip=skip, encoder=False)
        if not lexical:
            continue
        j, p_lex = lexical[0].item_id, lexical[0].score
        qvec = m.unit_vector(slot)
        if qvec is None:
            if p_lex >= min_lexical_alone:
                union(iid, j)
            continue
        enc = m.encoder_first(qvec, skip)
        if enc is not None and enc[0] == j and enc[1] >= min_cosine and p_lex >= min_lexical:
            union(iid, j)
    return {i: find(i) for i in ids}
