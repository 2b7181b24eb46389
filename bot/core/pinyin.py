"""Romanised pinyin: is a Latin-letter message the sound of a Chinese question?

Kernel-level because both the pipeline (which language to answer in: "liuliang zenme cha"
comes from a Chinese speaker) and the matcher (``community.search``, which spells it back in
the knowledge base's words) need it. Needs only pypinyin's character table.
"""

from __future__ import annotations

import functools
import re
import unicodedata

__all__ = ["pinyin_syllables", "romanized_syllables"]


@functools.lru_cache(maxsize=1)
def pinyin_syllables() -> frozenset[str]:
    """Every toneless pinyin syllable (``v`` for ü), from pypinyin's own character table:
    what romanised input may be made of."""
    from pypinyin import Style, lazy_pinyin

    chars = "".join(map(chr, range(0x4E00, 0x9FA6)))
    out = {s.replace("ü", "v") for s in lazy_pinyin(chars, style=Style.NORMAL, errors="ignore")}
    # interjections without a vowel (呣 m, 嗯 n/ng, 噷 hm, 哼 hng) would read any run of
    # consonants ("mm", "nng") as Chinese
    return frozenset(s for s in out if s.isascii() and s.isalpha() and any(v in s for v in "aeiouv"))


_TONE_DIGIT_RE = re.compile(r"(?<=[a-z])[1-5]")
_LATIN_QUERY_RE = re.compile(r"^[a-z0-9' ]+$")
_MAX_SYLLABLE = 6


def romanized_syllables(text: str) -> list[list[str]] | None:
    """Normalised text read as romanised pinyin: per space-separated token its syllables
    (toneless; tone digits 1-5 and tone marks dropped; ``ü``/``u:`` as ``v``), or None when
    it is not pinyin (a token that does not split into syllables, or fewer than two syllables).
    Splitting prefers fewer syllables ("xian" is one syllable, not xi+an)."""
    t = unicodedata.normalize("NFKD", text.replace("ü", "v").replace("u:", "v"))
    t = "".join(c for c in t if not unicodedata.combining(c))
    t = _TONE_DIGIT_RE.sub("", t)
    if not t or not _LATIN_QUERY_RE.match(t) or any(c.isdigit() for c in t):
        return None
    valid = pinyin_syllables()
    out: list[list[str]] = []
    for tok in t.replace("'", " ").split():
        seg = _split_syllables(tok, valid)
        if seg is None:
            return None
        out.append(seg)
    return out if sum(map(len, out)) >= 2 else None


def _split_syllables(tok: str, valid: frozenset[str]) -> list[str] | None:
    n = len(tok)
    best: list[list[str] | None] = [None] * (n + 1)  # best[i]: fewest syllables for tok[i:]
    best[n] = []
    for i in range(n - 1, -1, -1):
        for j in range(min(n, i + _MAX_SYLLABLE), i, -1):
            rest, cur = best[j], best[i]
            if rest is not None and tok[i:j] in valid and (cur is None or len(rest) + 1 < len(cur)):
                best[i] = [tok[i:j], *rest]
    return best[0]
