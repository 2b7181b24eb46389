"""Watched words (CJK-safe words, wildcards, regexes), the review queue and the audit trail."""

from __future__ import annotations

import pytest
from hypothesis import given, settings as hsettings, strategies as st

from bot.core.app_keys import SERVICES
from bot.core.models import ChannelAccount, OutboxMessage
from community.moderation import service as moderation
from community.moderation.matcher import PatternError, Rule, WatchList, compile_rule, fold
from community.moderation.models import MemberStanding, ModerationAudit, ReviewItem
from community.qa.models import Answer, Question
from tests.community_helpers import chat, csrf, staff_login, wait_sent


def wl(*rules: tuple[str, str, str]) -> WatchList:
    return WatchList([Rule(i, p, k, a, "***") for i, (p, k, a) in enumerate(rules, 1)])


@pytest.mark.parametrize("text", ["法轮", "法 轮", "法-輪", "ＦＡ法．轮", "这是法轮功"])
def test_cjk_word_matches_through_spacing_width_and_traditional(text: str) -> None:
    assert wl(("法轮", "word", "block")).check(text).action == "block"


def test_latin_word_needs_boundaries_and_case_folds() -> None:
    w = wl(("spam", "word", "replace"))
    assert w.check("Buy SPAM now").text == "Buy *** now"
    assert w.check("spammer").action == "allow"
    assert wl(("free money", "word", "flag")).check("get FREE-money").action == "flag"


def test_wildcards_and_regexes() -> None:
    w = wl(("免费*流量", "wildcard", "hold"), (r"1[3-9]\d{9}", "regex", "flag"), ("代?办", "wildcard", "warn"))
    assert w.check("免费领取10G流量").action == "hold"
    assert w.check("免费的东西").action == "allow"
    assert w.check("加我 13800138000").action == "flag"
    assert w.check("代理办证").action == "warn"


def test_precedence_block_beats_everything() -> None:
    w = wl(("广告", "word", "replace"), ("赌博", "word", "block"), ("谣言", "word", "flag"))
    v = w.check("广告 赌博 谣言")
    assert v.action == "block" and not v.allowed
    assert {h.pattern for h in v.hits} == {"广告", "赌博", "谣言"}


@pytest.mark.parametrize(
    "rule",
    [
        Rule(1, "(", "regex", "block"),
        Rule(1, "", "word", "block"),
        Rule(1, "x" * 201, "word", "block"),
        Rule(1, "***", "wildcard", "block"),
    ],
)
def test_bad_patterns_are_refused(rule: Rule) -> None:
    with pytest.raises(PatternError):
        compile_rule(rule)


@given(st.text(max_size=60))
@hsettings(max_examples=200, deadline=None)
def test_fold_maps_back_into_the_original(text: str) -> None:
    f = fold(text)
    assert len(f.compact) == len(f.cmap) and len(f.spaced) == len(f.smap)
    assert all(0 <= i < len(text) for i in f.cmap + f.smap)
    assert f.cmap == sorted(f.cmap)


@given(st.text(alphabet="广告法轮 abc,。！", max_size=40))
@hsettings(max_examples=200, deadline=None)
def test_replacement_removes_every_match(text: str) -> None:
    w = WatchList([Rule(1, "广告", "word", "replace", "#")])
    once = w.check(text)
    assert "广告" not in fold(once.text).compact
    assert w.check(once.text).action == "allow"


async def test_blocked_held_and_flagged_posts(client) -> None:
    services = client.app[SERVICES]
    await moderation.add_word("赌博", "word", "block")
    await moderation.add_word("代办*证", "wildcard", "hold")
    await moderation.add_word("加微信", "word", "flag")
    blocked = await chat(client, "p1", text="/ask 哪里可以赌博")
    assert blocked[0]["kind"] == "moderation" and await Question.all().count() == 0
    held = await chat(client, "p1", text="/ask 代办身份证吗")
    assert held[0]["kind"] == "post"
    q_held = await Question.get(text="代办身份证吗")
    assert q_held.status == "held"
    flagged = await chat(client, "p1", text="/ask 加微信可以办套餐吗")
    q_flag = await Question.get(text="加微信可以办套餐吗")
    assert flagged[0]["kind"] == "post" and q_flag.status == "open"
    items = {i.content_id: i for i in await ReviewItem.filter(status="pending")}
    assert set(items) == {q_held.id, q_flag.id}
    # approve the held one (opens it), reject the flagged one (hides it)
    await moderation.decide(items[q_held.id].id, approve=True, reason="ok", reviewer="rita")
    await moderation.decide(items[q_flag.id].id, approve=False, reason="spam", reviewer="rita")
    assert await moderation.decide(items[q_flag.id].id, approve=True, reason="x", reviewer="rita") is None
    assert (await Question.get(id=q_held.id)).status == "open"
    assert (await Question.get(id=q_flag.id)).status == "rejected"
    actions = [a.action for a in await ModerationAudit.all().order_by("id")]
    assert actions.count("word_add") == 3 and {"block", "hold", "flag", "approved", "rejected"} <= set(actions)
    assert services is not None


async def test_warn_sends_caring_warning_and_freezes_forwarding(client) -> None:
    await moderation.add_word("5G辐射致癌", "word", "warn")
    await chat(client, "asker", text="/ask 手机信号怎么样")
    q = await Question.get(text="手机信号怎么样")
    for n in range(2):
        await chat(client, "rumour", action=f"ans:{q.code}")
        await chat(client, "rumour", text=f"听说5G辐射致癌 {n}")
    account = await ChannelAccount.get(channel="web", external_id="rumour")
    standing = await MemberStanding.get(member_id=account.member_id)
    assert standing.warnings == 2 and standing.forwarding_frozen
    assert await moderation.is_forwarding_frozen(account.member_id)
    warning = await wait_sent(channel="web", address="rumour", purpose="system")
    assert "谣言" in warning.payload["text"] or "rumour" in warning.payload["text"].lower()
    assert await Answer.filter(status="held").count() == 2  # not shown until reviewed
    assert await OutboxMessage.filter(address="asker", purpose="system").count() == 0


async def test_review_page_roles_csrf_and_reason(client) -> None:
    await staff_login(client, "agent1", ["agent"])
    assert (await client.get("/admin/moderation", allow_redirects=False)).status == 403
    await client.post("/logout", data={})  # (refused without token, but a new login replaces the cookie)
    await staff_login(client, "rev", ["reviewer"])
    html, token = await csrf(client, "/admin/moderation")
    resp = await client.post(
        "/admin/moderation/words", data={"pattern": "(", "kind": "regex", "action": "block", "csrf_token": token}
    )
    assert resp.status == 400 and "正则表达式" in await resp.text()  # said in the reviewer's language (zh_CN)
    refused = await client.post("/admin/moderation/words", data={"pattern": "x", "kind": "word", "action": "block"})
    assert refused.status == 403
    ok = await client.post(
        "/admin/moderation/words",
        allow_redirects=False,
        data={"pattern": "<b>坏词</b>", "kind": "word", "action": "hold", "csrf_token": token},
    )
    assert ok.status == 303
    await chat(client, "p9", text="/ask 这里有<b>坏词</b>吗")
    item = await ReviewItem.get(status="pending")
    html, token = await csrf(client, "/admin/moderation")
    assert "<b>坏词</b>" not in html and "&lt;b&gt;坏词&lt;/b&gt;" in html
    no_reason = await client.post(
        f"/admin/moderation/items/{item.id}", data={"decision": "reject", "csrf_token": token}
    )
    assert no_reason.status == 400 and (await ReviewItem.get(id=item.id)).status == "pending"
    done = await client.post(
        f"/admin/moderation/items/{item.id}",
        allow_redirects=False,
        data={"decision": "reject", "reason": "广告", "csrf_token": token},
    )
    assert done.status == 303
    item = await ReviewItem.get(id=item.id)
    assert item.status == "rejected" and item.reviewer == "rev" and item.reason == "广告"
    assert await ModerationAudit.filter(actor="staff:rev", action="rejected").exists()
