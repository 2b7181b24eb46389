"""Romanised pinyin input ("liuliang zenme cha", "huafei chongzhi") spelled back in Chinese.

Members on a phone without a Chinese keyboard type the sound of a question. Pinyin alone is
ambiguous (liuliang: 流量, 留量, 刘亮 …), but a knowledge base's own vocabulary mostly is not:
among its words only 流量 sounds like liuliang. So each run of syllables is spelled with the
knowledge base's word (else character) of that fuzzy pinyin that most units hold, longest
run first, and the result is matched as if the member had typed it.
"""

from __future__ import annotations

import re

from .index import BM25Channel
from .tokenize import _CJK, _PINYIN, fold_syllable

__all__ = ["Homophones"]

MAX_WORD_SYLLABLES = 4


_ALL_CJK_RE = re.compile(rf"^[{_CJK}]+$")


def _is_cjk(term: str) -> bool:
    return _ALL_CJK_RE.match(term) is not None


class Homophones:
    """Folded pinyin syllables (a tuple) -> the most frequent word or character of the index
    that sounds so."""

    def __init__(self, table: dict[tuple[str, ...], str], generation: int = 0) -> None:
        self.table = table
        self.generation = generation

    @classmethod
    def from_channels(cls, words: BM25Channel, chars: BM25Channel, generation: int = 0) -> "Homophones":
        best: dict[tuple[str, ...], tuple[int, str]] = {}
        for channel in (words, chars):
            for term in list(channel.vocab):
                if not _is_cjk(term) or len(term) > MAX_WORD_SYLLABLES:
                    continue
                df = channel.doc_freq(term)
                if not df:
                    continue
                key = tuple(_PINYIN[ch] for ch in term)
                old = best.get(key)
                # a longer word beats characters; among equals the one more units hold
                if old is None or df > old[0]:
                    best[key] = (df, term)
        return cls({k: w for k, (_df, w) in best.items()}, generation)

    def spell(self, tokens: list[list[str]]) -> str:
        """Chinese text for the syllables of each token (toneless, unfolded), '' when not one
        syllable sounds like anything in the index. A syllable nothing sounds like is left out."""
        out: list[str] = []
        for tok in tokens:
            syl = [fold_syllable(s) for s in tok]
            i = 0
            while i < len(syl):
                for n in range(min(MAX_WORD_SYLLABLES, len(syl) - i), 0, -1):
                    word = self.table.get(tuple(syl[i : i + n]))
                    if word is not None:
                        out.append(word)
                        i += n
                        break
                else:
                    i += 1
        return "".join(out)
