"""Property and example tests for bot.core.normalize."""

from hypothesis import given, settings
from hypothesis import strategies as st

from bot.core.normalize import normalize


@settings(max_examples=300, deadline=None)
@given(st.text())
def test_normalize_never_raises_and_is_idempotent(text):
    once = normalize(text)
    assert isinstance(once, str)
    assert normalize(once) == once


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=st.characters(min_codepoint=0xFF01, max_codepoint=0xFF5E)))
def test_fullwidth_ascii_folds_to_halfwidth(text):
    out = normalize(text)
    assert out.isascii()
    half = "".join(chr(ord(c) - 0xFEE0) for c in text)
    assert out == normalize(half)


@settings(max_examples=100, deadline=None)
@given(st.text(alphabet="abcXYZ 123漢字微粒貸還款！？，。　", max_size=30))
def test_no_leading_trailing_or_double_spaces(text):
    out = normalize(text)
    assert out == out.strip()
    assert "  " not in out
    assert out == out.lower()


def test_examples():
    assert normalize("ＡＢＣ１２３") == "abc123"
    assert normalize("微粒貸怎麼還款？") == "微粒贷怎么还款"
    assert normalize("臺灣  乾燥!!") == "台湾 干燥"
    assert normalize("  Hello,   World!! ") == "hello world"
    assert normalize("") == ""
    assert normalize("！？。，") == ""


def test_traditional_equals_simplified():
    pairs = [("查詢流量", "查询流量"), ("話費餘額", "话费余额"), ("國際漫遊", "国际漫游")]
    for trad, simp in pairs:
        assert normalize(trad) == normalize(simp)
