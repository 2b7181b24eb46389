"""Self-calibration: the answer threshold that keeps this knowledge base's answers right.

The default thresholds were fitted on public dev sets; an operator's knowledge base is
different (more phrasings per item, its own vocabulary). Its items' own question variants are
a labelled set for free: hold each phrasing out in turn (``Matcher`` ``skip``: the index holds
everything else), ask it, and see whether its item comes first and with what confidence. The
lowest confidence at which the answers so far are still at least ``target`` precise (95 %) is
the threshold for this knowledge base.

Blocking (about one lexical search per phrasing, plus the encoder's ranking when asked for,
with vectors already made): run it in a worker thread (``KnowledgeService`` does).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .matcher import Matcher

__all__ = ["Calibration", "calibrate", "TARGET_PRECISION"]

TARGET_PRECISION = 0.95
MIN_ANSWERED = 10  # fewer answers than this at a threshold say nothing about it
MIN_THRESHOLD = 0.5  # never answer below this, whatever a small KB suggests
MAX_QUESTIONS = 3000  # held-out phrasings (a random sample beyond this, seeded)
SWEEP = (0.5, 0.55, 0.6, 0.65, 0.7, 0.75, 0.8, 0.85, 0.9)


@dataclass(frozen=True)
class Calibration:
    """What the leave-one-out pass found (shown to reviewers)."""

    stage: str  # "lexical" or "encoder"
    questions: int  # held-out phrasings asked
    items: int  # items with at least two phrasings (the others cannot be held out)
    top1: float  # share whose own item came first
    threshold: float | None  # the lowest threshold with >= target precision; None: too little data
    answered: float  # share answered at that threshold
    precision: float  # their precision
    target: float = TARGET_PRECISION
    sweep: tuple[tuple[float, float, float], ...] = field(default=())  # (threshold, answered, precision)

    def lines(self) -> list[str]:
        head = f"{self.stage}: {self.questions} held-out phrasings of {self.items} items, top-1 {self.top1:.3f}"
        if self.threshold is None:
            res = f"no threshold reaches {self.target:.0%} precision with {MIN_ANSWERED}+ answers"
        else:
            res = (
                f"answer threshold {self.threshold:.3f}: answers {self.answered:.1%} "
                f"at {self.precision:.1%} precision (target {self.target:.0%})"
            )
        rows = [f"  >= {t:.2f}: answered {a:.3f}, precision {p:.3f}" for t, a, p in self.sweep]
        return [head, res, *rows]


def calibrate(
    m: "Matcher",
    *,
    encoder: bool = False,
    target: float = TARGET_PRECISION,
    max_questions: int = MAX_QUESTIONS,
    seed: int = 7,
) -> Calibration:
    """Leave-one-out over every item's question phrasings (see the module doc). With
    ``encoder``, the encoder's ranking of each held-out phrasing (its vector is already
    made); without, the lexical path's."""
    held: list[tuple[int, int, str, str]] = []  # (item, slot, text, locale)
    items = 0
    for iid in m.item_ids:
        units = m.question_units(iid)
        if len(units) < 2:
            continue
        items += 1
        loc = m.item_locale(iid)
        held += [(iid, slot, text, loc) for slot, text in units]
    if len(held) > max_questions:
        held = random.Random(seed).sample(held, max_questions)
    results: list[tuple[float, bool]] = []
    for iid, slot, text, loc in held:
        qvec = m.unit_vector(slot) if encoder else None
        if encoder and qvec is None:
            continue
        got = m.search(text, locale=loc, limit=1, qvec=qvec, skip=frozenset((slot,)), encoder=encoder)
        results.append((got[0].score if got else 0.0, bool(got) and got[0].item_id == iid))
    return _summarise("encoder" if encoder else "lexical", results, items, target)


def _summarise(stage: str, results: list[tuple[float, bool]], items: int, target: float) -> Calibration:
    n = len(results)
    if not n:
        return Calibration(stage, 0, items, 0.0, None, 0.0, 0.0, target)
    top1 = sum(ok for _s, ok in results) / n
    ordered = sorted(results, key=lambda x: -x[0])
    best: tuple[float, float, float] | None = None
    right = 0
    for k, (score, ok) in enumerate(ordered, 1):
        right += ok
        last_of_tie = k == n or ordered[k][0] < score
        if last_of_tie and k >= MIN_ANSWERED and score >= MIN_THRESHOLD and right / k >= target:
            best = (score, k / n, right / k)
    sweep = []
    for t in SWEEP:
        ans = [ok for s, ok in results if s >= t]
        sweep.append((t, len(ans) / n, sum(ans) / len(ans) if ans else 0.0))
    if best is None:
        return Calibration(stage, n, items, top1, None, 0.0, 0.0, target, tuple(sweep))
    # the very confidence of the last answer kept (not rounded: rounding up would drop it)
    return Calibration(stage, n, items, top1, best[0], best[1], best[2], target, tuple(sweep))
