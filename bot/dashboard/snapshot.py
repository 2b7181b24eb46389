"""The dashboard's /metrics figures as one typed value, and its JSON form.

One process computes a :class:`Snapshot` (``bot/dashboard/publisher.py``) and publishes it as
JSON; every web process reads it back with :func:`loads` and serves it
(``bot/dashboard/prom.py``). The JSON is versioned; anything that is not a well-formed
snapshot of this version is a :class:`ValueError`, so a reader keeps the figures it has.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

VERSION = 1


@dataclass(slots=True)
class Snapshot:
    at: float = 0.0  # when it was computed (Unix time); 0: never
    kpis: dict[str, dict[str, float]] = field(default_factory=dict)  # kpi -> channel -> value
    funnel: dict[str, tuple[int, float | None]] = field(default_factory=dict)  # layer -> (reached, hand-on rate)
    sla: dict[str, float] = field(default_factory=dict)
    unanswered: int = 0
    points: tuple[int, int] | None = None  # (issued, redeemed); None: no ledger
    offers: dict[str, tuple[int, int, int]] = field(default_factory=dict)  # offer id -> (imp, click, accept)


def dumps(snap: Snapshot) -> str:
    """Compact JSON (tuples as arrays); ``allow_nan=False``: a figure is a finite number."""
    body = {
        "v": VERSION,
        "at": snap.at,
        "kpis": snap.kpis,
        "funnel": {k: [n, r] for k, (n, r) in snap.funnel.items()},
        "sla": snap.sla,
        "unanswered": snap.unanswered,
        "points": list(snap.points) if snap.points is not None else None,
        "offers": {k: list(v) for k, v in snap.offers.items()},
    }
    return json.dumps(body, separators=(",", ":"), ensure_ascii=False, allow_nan=False)


def _num(v: Any) -> float:
    if isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v):
        raise ValueError(f"not a finite number: {v!r}")
    return float(v)


def _int(v: Any) -> int:
    if isinstance(v, bool) or not isinstance(v, int):
        raise ValueError(f"not an integer: {v!r}")
    return v


def _obj(v: Any) -> dict[str, Any]:
    if not isinstance(v, dict):
        raise ValueError(f"not an object: {v!r}")
    return v


def _arr(v: Any, n: int) -> list[Any]:
    if not isinstance(v, list) or len(v) != n:
        raise ValueError(f"not an array of {n}: {v!r}")
    return v


def loads(raw: str | bytes) -> Snapshot:
    """The snapshot :func:`dumps` wrote; ValueError for anything else."""
    try:
        body = _obj(json.loads(raw))
    except json.JSONDecodeError as exc:  # a ValueError already; say what was read
        raise ValueError(f"dashboard snapshot is not JSON: {exc}") from exc
    if body.get("v") != VERSION:
        raise ValueError(f"dashboard snapshot version {body.get('v')!r}, expected {VERSION}")
    try:
        points = body["points"]
        return Snapshot(
            at=_num(body["at"]),
            kpis={k: {ch: _num(x) for ch, x in _obj(per).items()} for k, per in _obj(body["kpis"]).items()},
            funnel={
                k: (_int(_arr(v, 2)[0]), None if v[1] is None else _num(v[1])) for k, v in _obj(body["funnel"]).items()
            },
            sla={k: _num(v) for k, v in _obj(body["sla"]).items()},
            unanswered=_int(body["unanswered"]),
            points=None if points is None else (_int(_arr(points, 2)[0]), _int(points[1])),
            offers={k: (_int(_arr(v, 3)[0]), _int(v[1]), _int(v[2])) for k, v in _obj(body["offers"]).items()},
        )
    except KeyError as exc:
        raise ValueError(f"dashboard snapshot without {exc}") from exc
