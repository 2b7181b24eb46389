"""Text normalisation shared by indexing and querying.

``normalize`` folds everything that should not distinguish two questions:
Unicode compatibility forms (NFKC: full-width -> half-width, circled digits,
ligatures), traditional -> simplified Chinese (OpenCC ``t2s``), case, and
punctuation/symbols/whitespace (collapsed to one ASCII space).  It is
idempotent: ``normalize(normalize(x)) == normalize(x)`` for every string.
"""

from __future__ import annotations

import functools
import re
import unicodedata
from typing import Any, cast

__all__ = ["normalize", "to_simplified"]

# Anything that is not a letter/digit/mark (``\w`` minus ``_``) is a separator.
_SEP_RE = re.compile(r"[\W_]+", re.UNICODE)
_MAX_PASSES = 6


@functools.lru_cache(maxsize=1)
def _t2s() -> Any:
    import opencc  # opencc-python-reimplemented

    return opencc.OpenCC("t2s")


@functools.lru_cache(maxsize=1)
def _traditional_chars() -> frozenset[str]:
    """First characters of every OpenCC t2s dictionary key: lets us skip
    OpenCC (the slow part) for the usual all-simplified or ASCII text.
    Empty set (= always convert) if the library layout is not recognised."""
    conv = _t2s()
    conv.convert("\u6e2c")  # forces the lazy dictionary load
    dicts: list[dict[Any, Any]] = []

    def walk(obj: object, depth: int = 0) -> None:
        if depth > 4:
            return
        if isinstance(obj, dict):
            dicts.append(obj)
        elif isinstance(obj, (list, tuple)):
            for x in obj:
                walk(x, depth + 1)

    walk(getattr(conv, "_dict_chain_data", None))
    changing: set[str] = set()
    for d in dicts:
        for k, v in d.items():
            if isinstance(k, str) and len(k) == 1 and str(v).split(" ")[0] != k:
                changing.add(k)
    for d in dicts:
        for k, v in d.items():
            if isinstance(k, str) and len(k) > 1 and str(v).split(" ")[0] != k:
                if changing.isdisjoint(k):
                    changing.update(k)  # conservative: phrase-only conversion
    return frozenset(changing)


def to_simplified(text: str) -> str:
    """Traditional -> simplified Chinese; returns ``text`` unchanged (fast)
    when it holds no character OpenCC would convert."""
    if text.isascii():
        return text
    trad = _traditional_chars()
    if trad and trad.isdisjoint(text):
        return text
    return cast(str, _t2s().convert(text))  # opencc is untyped


def _one_pass(text: str) -> str:
    text = unicodedata.normalize("NFKC", text)
    text = to_simplified(text)
    text = text.lower()
    text = _SEP_RE.sub(" ", text)
    return text.strip()


# Text made only of these is a fixed point of ``_one_pass`` (NFKC, lower-casing
# and the separator rule leave it alone) unless OpenCC would still convert it.
_SETTLED_RE = re.compile(r"[\u3400-\u4dbf\u4e00-\u9fffa-z0-9]+(?: [\u3400-\u4dbf\u4e00-\u9fffa-z0-9]+)*")


def _settled(text: str) -> bool:
    """Whether another pass provably changes nothing (saves the usual second pass)."""
    if not _SETTLED_RE.fullmatch(text):
        return False
    trad = _traditional_chars()
    return bool(trad) and trad.isdisjoint(text)


CACHED_LENGTH = 256  # texts up to this long are remembered: a message is folded 3 times on its way


def normalize(text: str) -> str:
    """Fold ``text`` for matching (see module doc).  Never raises on ``str``;
    ``None`` becomes ``""``."""
    if not text:
        return ""
    if not isinstance(text, str):
        text = str(text)
    if len(text) <= CACHED_LENGTH:
        return _fold_cached(text)
    return _fold(text)


def _fold(text: str) -> str:
    # Surrogates (lone halves) cannot be normalised meaningfully; drop them.
    if any("\ud800" <= ch <= "\udfff" for ch in text):
        text = "".join(ch for ch in text if not ("\ud800" <= ch <= "\udfff"))
    out = _one_pass(text)
    if _settled(out):
        return out
    # Folding steps can interact (e.g. lowercasing yields a non-NFKC form);
    # iterate to a fixed point so the function is idempotent.
    for _ in range(_MAX_PASSES):
        nxt = _one_pass(out)
        if nxt == out:
            return out
        out = nxt
    return out


# bounded: at most 16,384 short texts (a few MB), the commands and common questions stay in it
_fold_cached = functools.lru_cache(maxsize=16384)(_fold)
