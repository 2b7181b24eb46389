"""Member-facing text: Babel catalogs under ``locales/``, zh_CN first.

Each package keeps its own catalog domain (``locales/<locale>/LC_MESSAGES/<domain>.po``);
all domains of a locale are merged. Catalogs are compiled in memory at start-up, so no
build step is needed; ``make locales`` re-extracts and updates them.
"""

from __future__ import annotations

import io
import logging
import re
from functools import lru_cache
from pathlib import Path
from typing import Any, Callable

from babel.messages.mofile import write_mo
from babel.messages.pofile import read_po
from babel.support import NullTranslations, Translations

from bot.core.pinyin import romanized_syllables
from bot.core.settings import ROOT

log = logging.getLogger(__name__)

LOCALES = ("zh_CN", "zh_TW", "en")
DEFAULT_LOCALE = "zh_CN"
LOCALES_DIR = ROOT / "locales"
LOCALE_NAMES = {"zh_CN": "简体中文", "zh_TW": "繁體中文", "en": "English"}

Gettext = Callable[..., str]


def N_(msgid: str) -> str:
    """Mark a constant for extraction; translate it later with a locale's gettext."""
    return msgid


def normalize_locale(hint: str | None) -> str | None:
    """Map a client's language tag (``zh-hans``, ``zh-TW``, ``en-US`` …) to one of ours."""
    if not hint:
        return None
    tag = hint.strip().lower().replace("_", "-")
    if tag.startswith("zh"):
        if any(p in tag for p in ("hant", "-tw", "-hk", "-mo")):
            return "zh_TW"
        return "zh_CN"
    if tag.startswith("en"):
        return "en"
    return None


def is_traditional(text: str) -> bool:
    """Whether Chinese text is written in traditional characters (it changes under t2s)."""
    from bot.core.normalize import to_simplified  # the matcher's fast t2s, loaded lazily

    return to_simplified(text) != text


_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")
_LATIN_WORD = re.compile(r"[A-Za-z]{2,}")
_CONSONANT_RUN = re.compile(r"[^aeiouy]{5,}")


def detect_locale(text: str, fallback: str) -> str:
    """Language of one message: Latin-only text is English, Chinese keeps zh_CN/zh_TW.

    In the kernel because the pipeline (a first contact's language) and channels (the
    language of a reply they render) both need it, and it is a pure function of the text."""
    if not text:
        return fallback
    if _CJK.search(text):
        if fallback == "zh_TW":
            return fallback
        return "zh_TW" if is_traditional(text) else "zh_CN"
    words = _LATIN_WORD.findall(text)
    # one word may be a code such as CXLL; keyboard mashing ("asdkjh qwpoe zzxv") is no
    # language, and romanised pinyin ("liuliang zenme cha") is Chinese
    if sum(1 for w in words if _wordlike(w)) >= 2:
        if romanized_syllables(text.lower()) is not None:
            return fallback if fallback.startswith("zh") else DEFAULT_LOCALE
        return "en"
    return fallback


def _wordlike(word: str) -> bool:
    """Could be an English word: has a vowel, no run of five consonants."""
    w = word.lower()
    return any(c in "aeiouy" for c in w) and _CONSONANT_RUN.search(w) is None


class Translator:
    def __init__(self, locales_dir: Path = LOCALES_DIR) -> None:
        self._dir = locales_dir
        self._cache: dict[str, NullTranslations] = {}

    def translations(self, locale: str) -> NullTranslations:
        if locale not in self._cache:
            self._cache[locale] = self._load(locale)
        return self._cache[locale]

    def _load(self, locale: str) -> NullTranslations:
        merged: Translations | None = None
        folder = self._dir / locale / "LC_MESSAGES"
        for po_path in sorted(folder.glob("*.po")):
            with po_path.open("rb") as fh:
                catalog = read_po(fh, locale=locale)
            buf = io.BytesIO()
            write_mo(buf, catalog, use_fuzzy=False)
            buf.seek(0)
            tr = Translations(buf, domain=po_path.stem)
            if merged is None:
                merged = tr
            else:
                merged.merge(tr)
        return merged or NullTranslations()

    def gettext(self, locale: str, msgid: str, **params: Any) -> str:
        text = self.translations(locale if locale in LOCALES else DEFAULT_LOCALE).gettext(msgid)
        return _format(text, params)

    def ngettext(self, locale: str, singular: str, plural: str, n: int, **params: Any) -> str:
        text = self.translations(locale).ngettext(singular, plural, n)
        return _format(text, {"n": n, **params})

    def bind(self, locale: str) -> Gettext:
        """A ``_(msgid, **params)`` for one locale."""

        def _(msgid: str, **params: Any) -> str:
            return self.gettext(locale, msgid, **params)

        return _


_PLACEHOLDER = re.compile(r"%\((\w+)\)s")


def _format(text: str, params: dict[str, Any]) -> str:
    if not params:
        return text
    return _PLACEHOLDER.sub(lambda m: str(params.get(m.group(1), m.group(0))), text)


@lru_cache(maxsize=1)
def get_translator() -> Translator:
    return Translator()
