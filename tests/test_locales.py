"""Every member-facing string has its Chinese translations, and the catalogs load."""
from __future__ import annotations

from bot import locales_tool
from bot.i18n import Translator


def test_catalogs_are_complete() -> None:
    assert locales_tool.update(None, check=True) == 0, "run `make locales` and translate the new entries"


def test_zh_cn_is_the_default_and_placeholders_survive() -> None:
    tr = Translator()
    assert tr.gettext("zh_CN", "Was this answer helpful?") == "这个回答有帮助吗？"
    assert tr.gettext("en", "Was this answer helpful?") == "Was this answer helpful?"
    assert tr.gettext("zh_TW", "Was this answer helpful?") != "Was this answer helpful?"
    assert tr.gettext("xx", "Was this answer helpful?") == "这个回答有帮助吗？"
    assert tr.gettext("zh_CN", "Reply %(n)s: %(label)s", n=2, label="好") == "回复 2：好"
