"""Properties of the pieces behind issue 20: the pinyin reader, the calibration's threshold
choice, the out-of-domain script check, and the near-duplicate groups."""

from __future__ import annotations

import os

from hypothesis import given
from hypothesis import strategies as st

from bot.core.pinyin import pinyin_syllables, romanized_syllables
from community.search import KBDoc, Matcher, MatcherConfig
from community.search.calibrate import MIN_ANSWERED, MIN_THRESHOLD, _summarise
from community.search.duplicates import duplicate_groups
from community.search.ood import script_noise

SYLLABLES = sorted(pinyin_syllables())


@given(st.lists(st.lists(st.sampled_from(SYLLABLES), min_size=1, max_size=4), min_size=1, max_size=4), st.booleans())
def test_romanised_pinyin_splits_back_into_its_letters(tokens, tones):
    text = " ".join("".join(s + ("3" if tones else "") for s in tok) for tok in tokens)
    got = romanized_syllables(text)
    letters = "".join("".join(tok) for tok in tokens)
    if got is None:  # fewer than two syllables: one token that is itself one syllable ("xi"+"a" = "xia")
        assert len(tokens) == 1 and letters in pinyin_syllables()
        return
    assert "".join("".join(t) for t in got) == letters
    assert all(s in pinyin_syllables() for t in got for s in t)
    assert [len(t) for t in got] == [len(t) for t in got if t]  # no empty token


@given(st.text(alphabet="bcdfghjklmnpqrstvwxz", min_size=2, max_size=12))
def test_consonant_runs_are_not_pinyin(word):
    assert romanized_syllables(word) is None or all(len(s) > 1 for t in romanized_syllables(word) for s in t)


def test_known_readings():
    assert romanized_syllables("liuliang zenme cha") == [["liu", "liang"], ["zen", "me"], ["cha"]]
    assert romanized_syllables("liú liàng") == [["liu"], ["liang"]]
    assert romanized_syllables("asdkjh qwpoe zzxv") is None
    assert romanized_syllables("how do i check my data") is None


@given(st.lists(st.tuples(st.floats(0, 1), st.booleans()), max_size=200), st.sampled_from([0.8, 0.9, 0.95]))
def test_the_threshold_is_the_lowest_that_keeps_the_target(results, target):
    c = _summarise("lexical", results, 10, target)
    if c.threshold is None:
        return
    above = [ok for s, ok in results if s >= c.threshold]
    assert len(above) >= MIN_ANSWERED and c.threshold >= MIN_THRESHOLD
    assert sum(above) / len(above) >= target - 1e-9
    assert abs(c.answered - len(above) / len(results)) < 1e-9
    lower = sorted({s for s, _ok in results if MIN_THRESHOLD <= s < c.threshold})
    for t in lower:  # no lower observed confidence keeps the target with enough answers
        ans = [ok for s, ok in results if s >= t]
        assert not (len(ans) >= MIN_ANSWERED and sum(ans) / len(ans) >= target)


@given(st.text(max_size=40))
def test_script_noise_is_a_share(text):
    assert 0.0 <= script_noise(text, frozenset({"han", "latin"})) <= 1.0


def test_script_noise_examples():
    scripts = frozenset({"han", "latin"})
    assert script_noise("隨便亂打ㄅㄆㄇ", scripts) > 0.4
    assert script_noise("Привет как дела", scripts) == 1.0
    assert script_noise("怎么查流量 data", scripts) == 0.0


def test_duplicate_groups_merge_shared_phrasings_only():
    m = Matcher(MatcherConfig(jieba_tmp_dir=os.environ.get("BOT_JIEBA_CACHE_DIR")))
    m.build(
        [
            KBDoc(1, "怎么查询剩余流量", variants=("查流量",)),
            KBDoc(2, "流量剩余查询", variants=("查流量",)),  # shares a phrasing with 1
            KBDoc(3, "怎么办理宽带新装"),
            KBDoc(4, "话费余额怎么查"),
        ]
    )
    g = duplicate_groups(m)
    assert g[1] == g[2] == 1
    assert len({g[1], g[3], g[4]}) == 3
