"""The community as a visitor reads it: the question list (filters, order, search), a
question with named answerers, a member's profile, the badges page, linked to each other."""

from __future__ import annotations

import re

from bot.core.models import Member
from community.qa.models import Answer, Question
from gamification.models import MemberBadge
from tests.community_helpers import chat


async def member_of(user: str) -> Member:
    member = await Member.filter(accounts__external_id__endswith=user).first()
    assert member is not None
    return member


async def ask(client, user: str, text: str) -> Question:  # type: ignore[no-untyped-def]
    await chat(client, user, text=f"/ask {text}")
    q = await Question.filter(text=text).first()
    assert q is not None
    return q


def codes(html: str) -> list[str]:
    return re.findall(r'href="/questions/([A-Za-z0-9]+)"', html)


async def test_list_filters_orders_and_searches(client) -> None:
    waiting = await ask(client, "pg-asker1", "宽带晚上总是掉线怎么办")
    answered = await ask(client, "pg-asker2", "国际漫游到日本要提前开通吗")
    solved = await ask(client, "pg-asker3", "携号转网需要什么条件")
    await chat(client, "pg-helper", text="帮助")
    helper = await member_of("pg-helper")
    await Answer.create(question=answered, member_id=helper.id, channel="web", text="要，出发前一天开通")
    await Answer.create(question=solved, member_id=helper.id, channel="web", text="在网满 120 天", accepted=True)
    await Question.filter(id=solved.id).update(status="accepted")

    html = await (await client.get("/questions")).text()  # default: waiting, nobody answered yet
    assert codes(html) == [waiting.code]
    assert codes(await (await client.get("/questions?show=answered")).text()) == [answered.code]
    assert codes(await (await client.get("/questions?show=accepted")).text()) == [solved.code]
    everything = codes(await (await client.get("/questions?show=all")).text())
    assert everything[0] == waiting.code and set(everything) == {waiting.code, answered.code, solved.code}
    newest = codes(await (await client.get("/questions?show=all&sort=newest")).text())
    assert newest == [solved.code, answered.code, waiting.code]
    found = codes(await (await client.get("/questions?show=all&q=漫游")).text())
    assert found == [answered.code]
    for bad in ("?show=<script>", "?page=abc", "?page=-3", "?sort=x&q=" + "长" * 500):
        assert (await client.get("/questions" + bad)).status == 200


async def test_question_page_names_people_and_links_profiles(client) -> None:
    q = await ask(client, "pg-named-asker", "副卡怎么办理")
    await chat(client, "pg-named-helper", text="帮助")
    helper = await member_of("pg-named-helper")
    await Answer.create(question=q, member_id=helper.id, channel="web", text="营业厅带身份证办理", accepted=True)
    await MemberBadge.create(member_id=helper.id, code="accept_10", award_key=f"badge:accept_10:{helper.id}")
    html = await (await client.get(f"/questions/{q.code}?lang=zh_CN")).text()
    assert f'href="/members/{helper.id}"' in html and "提问者已采纳" in html
    assert "帮手" in html or "Helper" not in html  # the title beside the name, translated
    profile = await (await client.get(f"/members/{helper.id}?lang=zh_CN")).text()
    assert "被采纳的回答" in profile and "10 accepted answers" not in profile
    assert q.code in profile
    badges = await (await client.get("/badges?lang=zh_CN")).text()
    assert f'href="/members/{helper.id}"' in badges and "如何获得" in badges
    assert (await client.get("/members/999999")).status == 404
    assert (await client.get("/members/abc")).status == 404


async def test_member_pages_link_to_each_other_in_every_locale(client) -> None:
    for lang, words in (
        ("zh_CN", ("社区", "排行榜", "徽章")),
        ("zh_TW", ("社群", "排行榜", "徽章")),
        ("en", ("Community", "Leaderboard", "Badges")),
    ):
        for path in ("/questions", "/leaderboard", "/badges", "/chat"):
            html = await (await client.get(f"{path}?lang={lang}")).text()
            for href in ('href="/chat"', 'href="/questions"', 'href="/leaderboard"', 'href="/badges"'):
                assert href in html, (path, href)
            for word in words:
                assert word in html, (path, lang, word)
