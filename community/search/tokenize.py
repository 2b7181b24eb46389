"""Turn normalised text into the term lists of each matching channel.

Channels (each indexed with its own BM25 statistics):

``w``  words: jieba search-mode words (Chinese) and light-stemmed English
       words, stop words removed, synonyms mapped to their canonical form;
``b``  word bigrams of the precise jieba cut (content words only): order;
``c``  characters: CJK character bigrams + unigrams, and character
       trigrams of English words (robust to typos and missing spaces);
``p``  pinyin: toneless, fuzzy-folded (zh/z, ch/c, sh/s, n/l, -ng/-n)
       syllable bigrams of CJK runs, for homophone typos (微利货/微粒贷).

The input must already be ``normalize``-d.
"""

from __future__ import annotations

import functools
import os
import re
import threading
from operator import add
from dataclasses import dataclass, field
from typing import Any, Iterable

from bot.core.pinyin import romanized_syllables

from .stopwords import STOPWORDS

__all__ = ["Analyzer", "Analyzed", "char_terms", "stem_en", "pinyin_of", "romanized_syllables"]

_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_RUN_RE = re.compile(rf"[{_CJK}]+|[^\s{_CJK}]+")
_IS_CJK_RE = re.compile(rf"[{_CJK}]")
_ASCII_WORD_RE = re.compile(r"^[a-z0-9']+$")


# ---------------------------------------------------------------- English
def stem_en(word: str) -> str:
    """A small suffix stripper (Porter-like, step 1 only): good enough to
    make charge/charges/charged/charging meet; not linguistics."""
    w = word
    if len(w) <= 3 or not w.isalpha():
        return w
    if w.endswith("'s"):
        w = w[:-2]
    for suf, rep in (("ies", "y"), ("sses", "ss"), ("ied", "y")):
        if w.endswith(suf) and len(w) - len(suf) >= 2:
            return w[: -len(suf)] + rep
    for suf in ("ingly", "edly", "ing", "ed", "ly"):
        if w.endswith(suf) and len(w) - len(suf) >= 3:
            w = w[: -len(suf)]
            if len(w) > 3 and w[-1] == w[-2] and w[-1] not in "lsz":
                w = w[:-1]  # stopped -> stop
            return w.rstrip("e") if len(w) > 3 else w
    if w.endswith("s") and not w.endswith(("ss", "us", "is")) and len(w) > 3:
        w = w[:-1]
    if w.endswith("e") and len(w) > 3:
        w = w[:-1]
    return w


# ----------------------------------------------------------------- pinyin
_FUZZY_INITIALS = (("zh", "z"), ("ch", "c"), ("sh", "s"))


@functools.lru_cache(maxsize=65536)
def pinyin_of(ch: str) -> str:
    """Toneless, fuzzy-folded pinyin of one CJK character ('' if none)."""
    from pypinyin import lazy_pinyin

    py = lazy_pinyin(ch, errors="ignore")
    if not py:
        return ""
    return fold_syllable(py[0])


def fold_syllable(s: str) -> str:
    """The fuzzy folding of one toneless syllable (zh/z, ch/c, sh/s, n/l, -ng/-n)."""
    for a, b in _FUZZY_INITIALS:
        if s.startswith(a):
            s = b + s[len(a) :]
            break
    if s.startswith("n") and len(s) > 1 and s != "ng":
        s = "l" + s[1:]
    if s.endswith("ng") and len(s) > 2:
        s = s[:-1]
    return s


class _PinyinTable(dict[str, str]):
    """char -> ``pinyin_of(char)`` or the char itself; a dict so lookups run in C."""

    def __missing__(self, ch: str) -> str:
        py = self[ch] = pinyin_of(ch) or ch
        return py


_PINYIN = _PinyinTable()
_BIGRAM = "{}\x01{}".format


# ------------------------------------------------------------------ jieba
_JIEBA_LOCK = threading.Lock()
_JIEBA_CACHE: dict[tuple[str | None, str | None, tuple[str, ...]], Any] = {}


def _jieba_tokenizer(userdict_path: str | None, tmp_dir: str | None, words: tuple[str, ...]) -> Any:
    key = (userdict_path, tmp_dir, words)
    with _JIEBA_LOCK:
        tok = _JIEBA_CACHE.get(key)
        if tok is not None:
            return tok
        import logging

        import jieba

        jieba.setLogLevel(logging.WARNING)
        if tmp_dir:
            os.makedirs(tmp_dir, exist_ok=True)
            jieba.dt.tmp_dir = tmp_dir
        tok = jieba.Tokenizer()
        tok.tmp_dir = tmp_dir
        tok.initialize()
        if userdict_path and os.path.exists(userdict_path):
            tok.load_userdict(userdict_path)
        for w in words:
            if w and not _ASCII_WORD_RE.match(w):
                tok.add_word(w, freq=None)
        _JIEBA_CACHE[key] = tok
        return tok


# --------------------------------------------------------------- analyzer
@dataclass
class Analyzed:
    text: str  # normalised input
    terms: dict[str, list[str]]  # channel -> terms (with repeats)
    pinyin: str  # fuzzy pinyin string (for rapidfuzz)
    has_cjk: bool
    words: list[str] = field(default_factory=list)  # content words, in order
    romanized: bool = False  # spelled from romanised pinyin input (Matcher._analyze)


class Analyzer:
    """Stateless after construction; safe to share between threads."""

    CHANNELS = ("w", "b", "c", "p")

    def __init__(
        self,
        *,
        userdict_path: str | None = None,
        synonyms: Iterable[Iterable[str]] = (),
        jieba_tmp_dir: str | None = None,
    ) -> None:
        from bot.core.normalize import normalize

        self._syn: dict[str, str] = {}
        words: list[str] = []
        for group in synonyms:
            group = [normalize(g) for g in group]
            group = [g for g in group if g]
            if len(group) < 2:
                continue
            canon = group[0].replace(" ", "")
            for g in group:
                self._syn[g.replace(" ", "")] = canon
                words.append(g.replace(" ", ""))
        # multi-word English synonyms are replaced at text level
        self._phrases = sorted(
            ((g, self._syn[g.replace(" ", "")]) for grp in synonyms for g in map(normalize, grp) if " " in g),
            key=lambda x: -len(x[0]),
        )
        self._jieba = _jieba_tokenizer(userdict_path, jieba_tmp_dir, tuple(sorted(set(words))))

    def _canon(self, tok: str) -> str:
        return self._syn.get(tok, tok)

    def prepare(self, text: str) -> str:
        """Map multi-word (English) synonym phrases to their canonical form: the text
        every channel is computed from."""
        if " " in text:  # every phrase is several (English) words
            for phrase, canon in self._phrases:
                if phrase in text:
                    text = re.sub(rf"(?<![a-z0-9]){re.escape(phrase)}(?![a-z0-9])", canon, text)
        return text

    def analyze(self, text: str) -> Analyzed:
        text = self.prepare(text)
        w_terms, b_terms, seq, has_cjk = self.word_terms(text)
        c_terms, p_terms, pinyin = char_terms(text)
        return Analyzed(text, {"w": w_terms, "b": b_terms, "c": c_terms, "p": p_terms}, pinyin, has_cjk, seq)

    def word_terms(self, text: str) -> tuple[list[str], list[str], list[str], bool]:
        """Word (``w``) and word-bigram (``b``) terms of prepared text, the content words
        in order, and whether it holds CJK."""
        has_cjk = bool(_IS_CJK_RE.search(text))
        jb = self._jieba
        # --- words (search mode) and the precise sequence for bigrams
        w_terms: list[str] = []
        seq: list[str] = []
        if has_cjk:
            syn = self._syn
            freq = jb.FREQ
            for t in jb.lcut(text, HMM=True):
                if t in STOPWORDS or not t.strip():
                    continue
                c = syn.get(t, t)
                ascii_word = c.isascii() and _ASCII_WORD_RE.match(c) is not None
                if ascii_word:
                    c = stem_en(c)
                if c in STOPWORDS:
                    continue
                seq.append(c)
                w_terms.append(c)
                if len(t) > 2 and c == t and not ascii_word:
                    # search mode: the dictionary sub-words of long words
                    for n in (2, 3):
                        for i in range(len(t) - n + 1):
                            g = t[i : i + n]
                            if g != t and freq.get(g) and g not in STOPWORDS:
                                w_terms.append(syn.get(g, g))
        else:
            for t in text.split():
                c = self._canon(t)
                if c in STOPWORDS or t in STOPWORDS:
                    continue
                c = stem_en(c)
                seq.append(c)
                w_terms.append(c)
        return w_terms, list(map(_BIGRAM, seq, seq[1:])), seq, has_cjk


def char_terms(text: str) -> tuple[list[str], list[str], str]:
    """Character (``c``) and pinyin (``p``) terms of prepared text and its fuzzy pinyin
    string.  Needs no jieba and no analyzer state, so a helper process can compute it."""
    c_terms: list[str] = []
    p_terms: list[str] = []
    py_parts: list[str] = []
    for m in _RUN_RE.finditer(text):
        run = m.group()
        if _IS_CJK_RE.match(run):
            c_terms += run
            c_terms += map(add, run, run[1:])
            syl = list(map(_PINYIN.__getitem__, run))
            py_parts.append("".join(syl))
            if len(syl) == 1:
                p_terms.append(syl[0])
            else:
                p_terms += map(add, syl, syl[1:])
        else:
            py_parts.append(run)
            if run in STOPWORDS or len(run) < 3:
                if run not in STOPWORDS:
                    c_terms.append("#" + run)
                continue
            padded = f"<{run}>"
            c_terms += map(add, map(add, padded, padded[1:]), padded[2:])
    return c_terms, p_terms, " ".join(py_parts)
