"""'Weak items': published answers that members vote down or that the bot gives with
barely enough confidence — the reviewers' list of what to improve first.

Ranking is a pure function (``rank``): a Wilson-score lower bound of the unhelpful rate
(👎 / (👍 + 👎)), so that one 👎 out of one vote does not outrank 30 out of 100; ties go to
the lower mean answer confidence. The figures come from the transcript and the feedback
table, grouped in SQL (``collect``) so the page stays cheap over a year of traffic.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime, timedelta, timezone

from tortoise.functions import Avg, Count

from bot.core.models import AnswerFeedback, TranscriptEntry
from community.models import KnowledgeItem

DEFAULT_DAYS = 30
MAX_DAYS = 365
Z_95 = 1.959963984540054  # two-sided 95%
LOW_CONFIDENCE_MARGIN = 0.05  # "barely confident": mean below answer threshold + this
RECENT_QUERIES = 3
SUGGEST_CHUNK = 5000  # transcript rows read per round when counting suggestions
SUGGEST_SCAN_LIMIT = 200_000  # newest "did you mean" replies looked at
DOWN_QUERY_SCAN = 5000  # newest 👎 looked at for the example questions


@dataclass
class ItemStats:
    """What the window says about one knowledge item."""

    item_id: int
    title: str = ""
    answers: int = 0  # confident answers (kind="answer" with a confidence)
    mean_confidence: float | None = None
    up: int = 0
    down: int = 0
    suggested: int = 0  # offered among "did you mean" choices
    picked: int = 0  # opened from a choice (kind="answer_pick")
    recent_down: list[str] = field(default_factory=list)

    @property
    def votes(self) -> int:
        return self.up + self.down

    @property
    def unhelpful_rate(self) -> float | None:
        return self.down / self.votes if self.votes else None

    @property
    def weakness(self) -> float:
        return wilson_lower_bound(self.down, self.votes)


def wilson_lower_bound(failures: int, n: int, z: float = Z_95) -> float:
    """Lower end of the Wilson score interval for ``failures / n``; 0 without data."""
    if n <= 0 or failures <= 0:
        return 0.0
    failures = min(failures, n)
    p = failures / n
    z2 = z * z
    centre = p + z2 / (2 * n)
    spread = z * math.sqrt(p * (1 - p) / n + z2 / (4 * n * n))
    return min(1.0, max(0.0, (centre - spread) / (1 + z2 / n)))


def is_weak(s: ItemStats, answer_threshold: float) -> bool:
    """Listed when members voted on it, or its answers were barely above the threshold."""
    low = s.mean_confidence is not None and s.mean_confidence < answer_threshold + LOW_CONFIDENCE_MARGIN
    return s.votes > 0 or low


def sort_key(s: ItemStats) -> tuple[float, float, int, int]:
    """Weakest first: higher unhelpful bound, then lower mean confidence (unknown last),
    then more answers given (more members affected), then id for a stable order."""
    conf = s.mean_confidence if s.mean_confidence is not None else math.inf
    return (-s.weakness, conf, -s.answers, s.item_id)


def rank(stats: Iterable[ItemStats], answer_threshold: float) -> list[ItemStats]:
    """The weak items, weakest first."""
    return sorted((s for s in stats if is_weak(s, answer_threshold)), key=sort_key)


def window_days(raw: str | None) -> int:
    """The ``days`` query parameter: an integer clamped to 1..365, else the default."""
    try:
        days = int(str(raw).strip()) if raw is not None else DEFAULT_DAYS
    except ValueError:
        return DEFAULT_DAYS
    return min(MAX_DAYS, max(1, days))


def _kb_ids(actions: object) -> set[int]:
    """Item ids among a suggestion reply's stored choice actions ("kb:12")."""
    if not isinstance(actions, dict):
        return set()
    out = set()
    for a in actions.get("choices") or ():
        if isinstance(a, str) and a.startswith("kb:") and a[3:].isdigit():
            out.add(int(a[3:]))
    return out


async def _suggested_counts(since: datetime) -> tuple[Counter[int], bool]:
    """How often each item was offered as a "did you mean" choice.

    The choices live in the JSON ``payload``, which SQLite and PostgreSQL cannot group
    alike, so this reads the payload column newest-first in id chunks (bounded memory and
    at most SUGGEST_SCAN_LIMIT rows). The flag says whether the limit cut the count short.
    """
    counts: Counter[int] = Counter()
    seen, last_id = 0, None
    base = TranscriptEntry.filter(direction="out", kind="suggest", created_at__gte=since)
    while seen < SUGGEST_SCAN_LIMIT:
        q = base.filter(id__lt=last_id) if last_id is not None else base
        rows = await q.order_by("-id").limit(min(SUGGEST_CHUNK, SUGGEST_SCAN_LIMIT - seen)).values_list("id", "payload")
        if not rows:
            return counts, False
        for _row_id, payload in rows:
            counts.update(_kb_ids(payload))
        seen += len(rows)
        last_id = rows[-1][0]
    more = await base.filter(id__lt=last_id).exists() if last_id is not None else False
    return counts, more


@dataclass
class WeakReport:
    days: int
    since: datetime
    answer_threshold: float
    items: list[ItemStats]
    suggest_truncated: bool = False


async def collect(
    days: int, answer_threshold: float, *, now: datetime | None = None, limit: int | None = None
) -> WeakReport:
    """Aggregate the window per published item and rank it."""
    since = (now or datetime.now(timezone.utc)) - timedelta(days=days)
    stats: dict[int, ItemStats] = {}

    def get(item_id: int) -> ItemStats:
        s = stats.get(item_id)
        if s is None:
            s = stats[item_id] = ItemStats(item_id=item_id)
        return s

    answers = await (
        TranscriptEntry.filter(
            direction="out", kind="answer", item_id__isnull=False, confidence__isnull=False, created_at__gte=since
        )
        .annotate(n=Count("id"), c=Avg("confidence"))
        .group_by("item_id")
        .values_list("item_id", "n", "c")
    )
    for item_id, n, c in answers:
        s = get(item_id)
        s.answers, s.mean_confidence = int(n), (float(c) if c is not None else None)
    votes = await (
        AnswerFeedback.filter(created_at__gte=since)
        .annotate(n=Count("id"))
        .group_by("item_id", "helpful")
        .values_list("item_id", "helpful", "n")
    )
    for item_id, helpful, n in votes:
        s = get(item_id)
        if helpful:
            s.up += int(n)
        else:
            s.down += int(n)

    published = dict(await KnowledgeItem.filter(id__in=list(stats), status="published").values_list("id", "title"))
    candidates = [s for s in stats.values() if s.item_id in published]
    for s in candidates:
        s.title = published[s.item_id]
    ranked = rank(candidates, answer_threshold)
    if limit is not None:
        ranked = ranked[:limit]
    report = WeakReport(days=days, since=since, answer_threshold=answer_threshold, items=ranked)
    if not ranked:
        return report
    ids = [s.item_id for s in ranked]
    by_id = {s.item_id: s for s in ranked}

    picks = await (
        TranscriptEntry.filter(direction="out", kind="answer_pick", item_id__in=ids, created_at__gte=since)
        .annotate(n=Count("id"))
        .group_by("item_id")
        .values_list("item_id", "n")
    )
    for item_id, n in picks:
        by_id[item_id].picked = int(n)
    suggested, report.suggest_truncated = await _suggested_counts(since)
    for s in ranked:
        s.suggested = suggested.get(s.item_id, 0)

    down_ids = [s.item_id for s in ranked if s.down]
    if down_ids:
        recent: dict[int, list[str]] = defaultdict(list)
        rows = await (
            AnswerFeedback.filter(helpful=False, item_id__in=down_ids, created_at__gte=since)
            .exclude(query="")
            .order_by("-created_at", "-id")
            .limit(DOWN_QUERY_SCAN)
            .values_list("item_id", "query")
        )
        for item_id, query in rows:
            qs = recent[item_id]
            text = " ".join(str(query).split())[:200]
            if len(qs) < RECENT_QUERIES and text and text not in qs:
                qs.append(text)
        for item_id, qs in recent.items():
            by_id[item_id].recent_down = qs
    return report


CSV_HEADER = (
    "item_id",
    "title",
    "answers",
    "mean_confidence",
    "helpful",
    "not_helpful",
    "unhelpful_rate",
    "weakness",
    "suggested",
    "picked",
    "recent_not_helpful_questions",
)


def csv_rows(report: WeakReport) -> list[tuple[object, ...]]:
    return [
        (
            s.item_id,
            s.title,
            s.answers,
            s.mean_confidence,
            s.up,
            s.down,
            s.unhelpful_rate,
            s.weakness,
            s.suggested,
            s.picked,
            " | ".join(s.recent_down),
        )
        for s in report.items
    ]
