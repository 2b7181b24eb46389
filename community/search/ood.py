"""Out-of-domain questions: say "I did not understand", never offer unrelated items.

Three signs, checked on the question and its ranking (``types.Ranking``):

- **other scripts**: most of its letters (``NOISE_SHARE``) are in a script the knowledge base
  is not written in (Cyrillic, Hangul, kana, Arabic …), or are Zhuyin symbols (ㄅㄆㄇ), which
  members type when they mash a Taiwanese keyboard, not to ask;
- **gibberish, or far from every item**: not one of its content words (``is_content_word``:
  two characters or more, not a question or function word) is a word of the
  knowledge base ("asdkjh qwpoe zzxv", "今天天气怎么样"), none of the lexical top three
  explains ``MIN_EXPLAINED`` of it (query coverage by characters or words) and the best
  confidence is below ``FAR_MAX`` — unless the encoder was consulted and is confident
  (``ENCODER_OVERRIDE``): a paraphrase sharing no word with its item is the encoder's point.

Measured on the sample knowledge base's held-out phrasings (bench/sample_kb_loo.py): no
in-domain question has zero known content words, while 37 % have a query coverage below 0.3,
so coverage alone is no sign (it was tried first).
"""

from __future__ import annotations

import unicodedata

from .types import Ranking

__all__ = ["out_of_domain", "script_of", "script_noise", "is_content_word", "FUNCTION_WORDS"]

NOISE_SHARE = 0.3
MIN_EXPLAINED = 0.3
FAR_MAX = 0.5
ENCODER_OVERRIDE = 0.3


def script_of(ch: str) -> str | None:
    """'han', 'latin', 'zhuyin' or 'other' for a letter; None for anything else."""
    o = ord(ch)
    if 0x3100 <= o <= 0x312F or 0x31A0 <= o <= 0x31BF:
        return "zhuyin"
    if 0x3400 <= o <= 0x4DBF or 0x4E00 <= o <= 0x9FFF or 0xF900 <= o <= 0xFAFF or 0x20000 <= o <= 0x2FA1F:
        return "han"
    if not unicodedata.category(ch).startswith("L"):
        return None
    if o < 0x250 or 0x1E00 <= o <= 0x1EFF:
        return "latin"
    return "other"


def script_noise(text: str, scripts: frozenset[str]) -> float:
    """Share of the letters in ``text`` that are in none of ``scripts`` (Zhuyin always counts)."""
    letters = [sc for sc in map(script_of, text) if sc is not None]
    if not letters:
        return 0.0
    return sum(1 for sc in letters if sc == "zhuyin" or sc not in scripts) / len(letters)


# Question and function words every KB holds: knowing them says nothing about the topic
# (the canonical forms of community/data/synonyms.txt's question-word groups among them).
FUNCTION_WORDS = frozenset(
    {
        "为什么",
        "什么时候",
        "怎么",
        "什么",
        "多少",
        "哪里",
        "哪儿",
        "哪个",
        "哪些",
        "如何",
        "能不能",
        "可不可以",
        "可以",
        "是不是",
        "有没有",
        "一下",
        "请问",
        "你好",
        "我们",
        "你们",
        "他们",
        "这个",
        "那个",
    }
)


def is_content_word(word: str) -> bool:
    """A word that can tell a topic: two characters or more, not a question/function word."""
    return len(word) >= 2 and word not in FUNCTION_WORDS


def out_of_domain(text: str, r: Ranking, scripts: frozenset[str]) -> bool:
    """Whether the question is outside the knowledge base's domain (see the module doc)."""
    if not text.strip():
        return False
    if script_noise(text, scripts) >= NOISE_SHARE:
        return True
    best = r.matches[0].score if r.matches else 0.0
    if r.consulted and best >= ENCODER_OVERRIDE:
        return False
    return bool(r.n_words) and not r.known_words and r.explained < MIN_EXPLAINED and best < FAR_MAX
