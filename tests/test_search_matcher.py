"""Ranking, thresholds and incremental updates of community.search.Matcher
on a small knowledge base built here (no external data)."""

import os

import pytest

from community.search import Decision, KBDoc, Match, Matcher, MatcherConfig

KB = [
    KBDoc(1, "怎么查询剩余流量", variants=("流量还剩多少", "查流量"), answer="发送CXLL到10086", sms_code="CXLL"),
    KBDoc(2, "如何办理国际漫游", variants=("出国手机怎么开通漫游",), answer="拨打10086开通国际漫游"),
    KBDoc(3, "话费余额查询", variants=("我还有多少话费",), answer="发送CXYE查询余额", sms_code="CXYE"),
    KBDoc(4, "微粒贷怎么还款", variants=("微粒贷还款方式",), answer="在微信钱包中还款"),
    KBDoc(5, "宽带报修", variants=("家里宽带上不了网",), answer="拨打报修电话"),
    KBDoc(6, "How do I check my data balance?", variants=("remaining data",), locale="en", answer="Text CXLL to 10086"),
    KBDoc(7, "How can I activate international roaming?", variants=("roaming abroad",), locale="en"),
    KBDoc(8, "Why was my card payment declined?", variants=("card payment not working",), locale="en"),
    KBDoc(9, "忘記密碼怎麼辦", variants=("重置服務密碼",), locale="zh_TW"),
]


@pytest.fixture(scope="module")
def tmpdir_jieba(tmp_path_factory):
    return str(tmp_path_factory.mktemp("jieba"))


@pytest.fixture()
def matcher(tmpdir_jieba):
    m = Matcher(MatcherConfig(jieba_tmp_dir=tmpdir_jieba))
    m.build(KB)
    return m


def top(m, text, **kw):
    res = m.search(text, **kw)
    assert res, f"no result for {text!r}"
    return res[0]


def test_build_len_and_types(matcher):
    assert len(matcher) == len(KB)
    res = matcher.search("查询流量")
    assert all(isinstance(x, Match) for x in res)
    assert all(0.0 <= x.score <= 1.0 for x in res)
    assert [x.score for x in res] == sorted((x.score for x in res), reverse=True)


@pytest.mark.parametrize(
    "query, expected",
    [
        ("我的流量还剩多少", 1),
        ("出国了手机漫游怎么开", 2),
        ("查一下话费余额", 3),
        ("宽带坏了上不了网", 5),
        ("how to check my remaining data", 6),
        ("international roaming activation", 7),
        ("my card payment got declined", 8),
    ],
)
def test_ranking(matcher, query, expected):
    assert top(matcher, query).item_id == expected


def test_sms_code_exact_match_case_and_width_folded(matcher):
    for q in ("CXLL", "cxll", "ＣＸＬＬ", " cxll "):
        m = top(matcher, q)
        assert m.item_id == 1 and m.score == 1.0
    d = matcher.decide("cxye")
    assert d.kind == "answer" and d.matches[0].item_id == 3


def test_homophone_typo(matcher):
    # 微利货/微粒贷: same pinyin for 微粒, one visual typo
    assert top(matcher, "微利贷怎么还").item_id == 4
    assert top(matcher, "微利货还款").item_id == 4


def test_traditional_query(matcher):
    assert top(matcher, "查詢剩餘流量", locale="zh_TW").item_id == 1
    # a zh_TW item is found by a simplified query too
    assert top(matcher, "忘记密码了怎么办", locale="zh_CN").item_id == 9


def test_locale_preference(matcher):
    r = matcher.search("roaming", locale="en")
    assert r[0].locale == "en"


def test_unrelated_text_is_none(matcher):
    for q in ("今天北京天气怎么样", "what's the weather like tomorrow", "asdfghjkl"):
        assert matcher.decide(q).kind == "none", q


def test_empty_query(matcher):
    assert matcher.search("") == []
    assert matcher.search("？！") == []
    assert matcher.decide("").kind == "none"


def test_thresholds_drive_decision(tmpdir_jieba):
    q = "流量还剩多少"
    always = Matcher(MatcherConfig(answer_threshold=0.0, suggest_threshold=0.0, jieba_tmp_dir=tmpdir_jieba))
    always.build(KB)
    d = always.decide(q)
    assert d.kind == "answer" and d.matches[0].item_id == 1
    never = Matcher(
        MatcherConfig(answer_threshold=1.01, suggest_threshold=0.0, tentative_share=2.0, jieba_tmp_dir=tmpdir_jieba)
    )
    never.build(KB)
    d = never.decide(q)
    assert d.kind == "suggest"
    assert 1 <= len(d.matches) <= 3 and d.matches[0].item_id == 1
    nothing = Matcher(MatcherConfig(answer_threshold=1.01, suggest_threshold=1.01, jieba_tmp_dir=tmpdir_jieba))
    nothing.build(KB)
    assert nothing.decide(q) == Decision("none", ())


def test_default_thresholds_answer_a_verbatim_question(matcher):
    d = matcher.decide("如何办理国际漫游")
    assert d.kind == "answer" and d.matches[0].item_id == 2


def test_incremental_upsert_remove_add_variant(matcher, monkeypatch):
    def no_rebuild(*a, **k):
        raise AssertionError("full rebuild called")

    monkeypatch.setattr(matcher, "build", no_rebuild)
    matcher.upsert(KBDoc(10, "携号转网怎么办理", variants=("换运营商保留号码",)))
    assert len(matcher) == len(KB) + 1
    assert top(matcher, "我想携号转网").item_id == 10
    # replace: old text is gone, new text found
    matcher.upsert(KBDoc(10, "副卡办理", variants=("加一张副卡",)))
    assert len(matcher) == len(KB) + 1
    assert top(matcher, "怎么加副卡").item_id == 10
    assert all(x.item_id != 10 for x in matcher.search("携号转网"))
    # learned variant
    assert all(x.item_id != 5 for x in matcher.search("光猫红灯一直闪")[:1])
    matcher.add_variant(5, "光猫红灯一直闪")
    assert top(matcher, "光猫红灯一直闪").item_id == 5
    # learned variants survive an upsert of the item
    matcher.upsert(KBDoc(5, "宽带故障报修"))
    assert top(matcher, "光猫红灯一直闪").item_id == 5
    # remove
    matcher.remove(10)
    assert len(matcher) == len(KB)
    assert all(x.item_id != 10 for x in matcher.search("怎么加副卡"))
    matcher.remove(12345)  # unknown id: no error
    with pytest.raises(KeyError):
        matcher.add_variant(12345, "x")


def test_sms_code_removed_with_item(matcher):
    matcher.remove(1)
    assert all(x.item_id != 1 for x in matcher.search("CXLL"))


def test_build_replaces_everything(matcher):
    matcher.build([KBDoc(100, "积分兑换")])
    assert len(matcher) == 1
    assert top(matcher, "积分怎么兑换").item_id == 100
    assert matcher.search("流量还剩多少") == [] or matcher.search("流量还剩多少")[0].item_id == 100


def test_extra_synonyms_from_config(tmpdir_jieba, tmp_path):
    syn = tmp_path / "syn.txt"
    syn.write_text("# comment\n流量,数据流量,上网量\n", encoding="utf-8")
    m = Matcher(MatcherConfig(synonyms_path=str(syn), extra_synonyms=[["宽带", "光纤"]], jieba_tmp_dir=tmpdir_jieba))
    m.build(KB)
    assert top(m, "上网量还剩多少").item_id == 1
    assert top(m, "光纤报修").item_id == 5


def test_works_without_data_files(tmpdir_jieba):
    m = Matcher(MatcherConfig(userdict_path=None, synonyms_path=None, jieba_tmp_dir=tmpdir_jieba))
    m.build(KB)
    assert top(m, "查流量").item_id == 1


def test_jieba_tmp_dir_used(tmpdir_jieba):
    import jieba

    Matcher(MatcherConfig(jieba_tmp_dir=tmpdir_jieba))
    assert jieba.dt.tmp_dir == tmpdir_jieba
    assert os.path.isdir(tmpdir_jieba)


def test_remembered_decisions_follow_every_index_change(matcher):
    """Repeated questions reuse the ranked matches, but never across an index change."""
    q = "积分兑换话费的步骤"
    first = matcher.decide(q)
    assert matcher.decide("积分兑换话费的步骤！") == first  # the same normalised text
    matcher.upsert(KBDoc(20, "积分兑换话费的步骤", variants=("积分怎么换话费",)))
    after_add = matcher.decide(q)
    assert after_add.kind == "answer" and after_add.matches[0].item_id == 20
    matcher.remove(20)
    assert all(m.item_id != 20 for m in matcher.decide(q).matches)
    matcher.add_variant(3, q)
    assert matcher.decide(q).matches[0].item_id == 3
    matcher.build([d for d in KB if d.id != 3])  # a full rebuild starts a fresh memory too
    assert all(m.item_id != 3 for m in matcher.decide(q).matches)


def test_thresholds_apply_to_remembered_matches(matcher):
    q = "我的流量还剩多少"
    assert matcher.decide(q).kind == "answer"
    matcher.config.answer_threshold = 1.01
    matcher.config.tentative_share = 2.0  # no single-option answers either
    assert matcher.decide(q).kind == "suggest"


def test_a_search_overlapping_an_index_change_is_not_remembered(matcher):
    """A full build runs in a worker thread while questions are answered: what was ranked
    against the half-changed index must not be served from memory afterwards."""
    real = matcher.assess

    def search_while_the_index_changes(*args, **kwargs):
        out = real(*args, **kwargs)
        matcher.upsert(KBDoc(30, "积分换流量", variants=("积分可以换流量吗",)))
        return out

    matcher.assess = search_while_the_index_changes
    stale = matcher.decide("积分可以换流量吗")
    matcher.assess = real
    assert all(m.item_id != 30 for m in stale.matches)
    assert matcher.decide("积分可以换流量吗").matches[0].item_id == 30
