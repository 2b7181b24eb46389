"""Public value types of the matcher."""

from __future__ import annotations

from dataclasses import dataclass

__all__ = ["KBDoc", "Match", "Decision", "Ranking"]


@dataclass(frozen=True)
class KBDoc:
    id: int  # knowledge item id
    title: str
    variants: tuple[str, ...] = ()  # alternative question phrasings
    answer: str = ""
    category: str = ""
    sms_code: str | None = None  # exact (case/width-folded) match answers directly, 1.0
    locale: str = "zh_CN"  # zh_CN | zh_TW | en
    tags: tuple[str, ...] = ()


@dataclass(frozen=True)
class Match:
    item_id: int
    title: str
    score: float  # calibrated confidence in [0, 1]
    locale: str


@dataclass(frozen=True)
class Decision:
    kind: str  # "answer" | "suggest" | "none"
    matches: tuple[Match, ...]  # answer: chosen first; suggest: <= 3; none: maybe empty
    tentative: bool = False  # answer: a single option, shown with "Not this one?" choices
    reason: str = ""  # none: "out_of_domain" when nothing in the KB is near
    consulted: bool = False  # the sentence encoder was asked (the lexical path was not sure)


@dataclass(frozen=True)
class Ranking:
    """One question's matches and what the decision needs to know about them."""

    matches: tuple[Match, ...]
    consulted: bool  # ranked with the encoder
    explained: float  # the most of the question (query coverage, characters or
    # words) any of the lexical top three explains
    known_words: int  # the question's content words the index holds
    n_words: int  # the question's content words
    lexical: tuple[Match, ...] = ()  # when the encoder was consulted: the lexical path's matches
    fallback: bool = False  # the encoder was needed but could not answer (server down)
