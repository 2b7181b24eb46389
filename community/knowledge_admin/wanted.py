"""'Knowledge wanted': the unanswered questions, clustered, most askers first."""

from __future__ import annotations

from dataclasses import dataclass, field

import re

from rapidfuzz import fuzz

from bot.core.models import UnansweredQuestion
from bot.core.normalize import normalize

_CJK_RE = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
SIMILARITY = 75  # rapidfuzz token_set_ratio (0-100) to join a cluster
SCAN_LIMIT = 5000  # newest unresolved questions looked at


@dataclass
class Cluster:
    example: str  # the first question seen, as asked
    key: str  # its normalised form (what others are compared to)
    askers: set[int] = field(default_factory=set)
    count: int = 0
    samples: list[str] = field(default_factory=list)
    ids: list[int] = field(default_factory=list)

    @property
    def n_askers(self) -> int:
        return len(self.askers)


def _spaced(norm: str) -> str:
    """Characters of CJK text as tokens, so token similarity works without word breaks."""
    return " ".join(_CJK_RE.sub(lambda m: " " + m.group() + " ", norm).split())


def cluster(rows: list[tuple[int, int, str, str]], similarity: int = SIMILARITY) -> list[Cluster]:
    """Greedy single pass: each question joins the most similar cluster at or above
    ``similarity``, else starts one. ``rows``: (id, member_id, text, normalized)."""
    clusters: list[Cluster] = []
    keys: list[str] = []
    for qid, member_id, text, norm in rows:
        norm = norm or normalize(text)
        if not norm:
            continue
        sp = _spaced(norm)
        best, best_score = None, similarity - 1e-9
        for i, k in enumerate(keys):
            s = fuzz.token_set_ratio(sp, k) if abs(len(sp) - len(k)) < 3 * max(len(sp), len(k)) else 0
            if s > best_score:
                best, best_score = i, s
        if best is None:
            clusters.append(Cluster(example=text, key=sp))
            keys.append(sp)
            best = len(clusters) - 1
        c = clusters[best]
        c.askers.add(member_id)
        c.count += 1
        c.ids.append(qid)
        if len(c.samples) < 5 and text not in c.samples:
            c.samples.append(text)
    clusters.sort(key=lambda c: (-c.n_askers, -c.count))
    return clusters


async def knowledge_wanted(limit: int = 30) -> list[Cluster]:
    rows = (
        await UnansweredQuestion.filter(resolved=False)
        .order_by("-id")
        .limit(SCAN_LIMIT)
        .values_list("id", "member_id", "text", "normalized")
    )
    return cluster(list(reversed(rows)))[:limit]


def parse_ids(text: str) -> list[int]:
    """The question ids a "resolved" button posts: comma-separated, at most SCAN_LIMIT."""
    parts = [p.strip() for p in text.split(",") if p.strip()]
    if not parts:
        raise ValueError("no questions given")
    if len(parts) > SCAN_LIMIT or not all(p.isdigit() and len(p) <= 18 for p in parts):
        raise ValueError("ids: up to %d question numbers, comma-separated" % SCAN_LIMIT)
    return sorted({int(p) for p in parts})


async def resolve(ids: list[int]) -> int:
    """Take these questions off the list (a reviewer dealt with them); returns how many changed."""
    return await UnansweredQuestion.filter(id__in=ids, resolved=False).update(resolved=True)
