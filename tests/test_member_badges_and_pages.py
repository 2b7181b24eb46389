"""What a member sees of their standing and the community: the badges command, the public list."""

from __future__ import annotations

from tests.community_helpers import chat
from tests.test_reply_language import texts


async def test_badges_command_lists_earned_badges_with_dates(client) -> None:
    from bot.core.models import Member
    from gamification.models import MemberBadge

    await chat(client, "badge-holder", text="我的流量还剩多少")
    member = await Member.filter(accounts__external_id__endswith="badge-holder").first()
    assert member is not None
    empty = texts(await chat(client, "badge-holder", text="徽章"))
    assert "还没有徽章" in empty
    await MemberBadge.create(member_id=member.id, code="first_accept", award_key=f"badge:first_accept:{member.id}")
    body = texts(await chat(client, "badge-holder", text="徽章"))
    assert "你的徽章" in body and "(20" in body, body


async def test_community_list_page_renders_open_and_solved(client) -> None:
    await chat(client, "asker-list", text="/ask 我家的猫为什么总是半夜唱京剧")
    for query in ("", "?status=open", "?status=accepted", "?status=bogus"):
        resp = await client.get(f"/questions{query}")
        assert resp.status == 200, (query, await resp.text())
    html = await (await client.get("/questions")).text()
    assert "半夜唱京剧" in html
