"""Every member-facing string has its Chinese translations, and the catalogs load."""

from __future__ import annotations

from bot import locales_tool
from bot.core.i18n import Translator


def test_catalogs_are_complete() -> None:
    assert locales_tool.update(None, check=True) == 0, "run `make locales` and translate the new entries"


def test_zh_cn_is_the_default_and_placeholders_survive() -> None:
    tr = Translator()
    assert tr.gettext("zh_CN", "Was this answer helpful?") == "这个回答有帮助吗？"
    assert tr.gettext("en", "Was this answer helpful?") == "Was this answer helpful?"
    assert tr.gettext("zh_TW", "Was this answer helpful?") != "Was this answer helpful?"
    assert tr.gettext("xx", "Was this answer helpful?") == "这个回答有帮助吗？"
    assert tr.gettext("zh_CN", "Reply %(n)s: %(label)s", n=2, label="好") == "回复 2：好"


def test_one_translation_per_message_across_catalogs() -> None:
    """All domains of a locale are merged into one catalog, so the same English text
    translated two ways in two packages shows one of them at random: say it once."""
    from collections import defaultdict

    from babel.messages.pofile import read_po

    from bot.core.i18n import LOCALES_DIR

    clashes = []
    for locale in ("zh_CN", "zh_TW"):
        seen: dict[str, dict[str, str]] = defaultdict(dict)
        for path in sorted((LOCALES_DIR / locale / "LC_MESSAGES").glob("*.po")):
            with path.open("rb") as f:
                for msg in read_po(f):
                    if msg.id and isinstance(msg.id, str) and msg.string:
                        seen[msg.id][path.stem] = msg.string
        clashes += [(locale, msgid, by_domain) for msgid, by_domain in seen.items() if len(set(by_domain.values())) > 1]
    assert clashes == [], "translate these the same way in every catalog (or use distinct English): %s" % clashes


def test_plural_messages_are_translated() -> None:
    from babel.messages.pofile import read_po

    from bot.core.i18n import LOCALES_DIR

    missing = []
    for locale in ("zh_CN", "zh_TW"):
        for path in sorted((LOCALES_DIR / locale / "LC_MESSAGES").glob("*.po")):
            with path.open("rb") as f:
                missing += [
                    (locale, path.stem, m.id[0]) for m in read_po(f) if isinstance(m.id, tuple) and not any(m.string)
                ]
    assert missing == []
