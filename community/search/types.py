"""Public value types of the matcher."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KBDoc", "Match", "Decision"]


@dataclass(frozen=True)
class KBDoc:
    id: int                          # knowledge item id
    title: str
    variants: tuple[str, ...] = ()   # alternative question phrasings
    answer: str = ""
    category: str = ""
    sms_code: str | None = None      # exact (case/width-folded) match answers directly, 1.0
    locale: str = "zh_CN"            # zh_CN | zh_TW | en
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Match:
    item_id: int
    title: str
    score: float                     # calibrated confidence in [0, 1]
    locale: str


@dataclass(frozen=True)
class Decision:
    kind: str                        # "answer" | "suggest" | "none"
    matches: tuple[Match, ...]       # answer: chosen first; suggest: <= 3; none: maybe empty
