"""A member answers, votes and accepts on /questions/CODE through the web chat session
(issue 18): the same service functions as the chat, a CSRF token bound to the session,
translated errors, and nothing for a visitor without a session."""

from __future__ import annotations

import re
from collections.abc import AsyncIterator
from pathlib import Path

import pytest_asyncio
from aiohttp import CookieJar
from aiohttp.test_utils import TestClient, TestServer

from bot.app import create_app
from bot.core.models import ChannelAccount
from community.qa.models import Answer, Question, Vote
from gamification.service import GAMIFICATION
from tests.community_helpers import wait_sent
from tests.conftest import load_sample_kb, make_settings

QUESTION = "携号转网需要满足什么条件？"
ANSWER = "在网满 120 天、没有欠费、不在合约期内即可办理。"


class Visitors:
    def __init__(self, app, clients: list[TestClient]) -> None:  # type: ignore[no-untyped-def]
        self.app = app
        self.clients = clients

    async def new(self) -> TestClient:
        c = TestClient(
            TestServer(self.app) if not self.clients else self.clients[0].server, cookie_jar=CookieJar(unsafe=True)
        )
        await c.start_server()
        self.clients.append(c)
        return c


@pytest_asyncio.fixture
async def visitors(tmp_path: Path) -> AsyncIterator[Visitors]:
    app = create_app(make_settings(tmp_path), db_setup="schema")
    v = Visitors(app, [])
    first = await v.new()
    await load_sample_kb(app)
    try:
        yield v
    finally:
        for c in reversed(v.clients[1:]):
            await c.session.close()
        await first.close()


async def say(c: TestClient, text: str) -> list[dict]:
    r = await c.post("/api/v1/chat", json={"text": text, "locale": "zh_CN"}, headers={"Accept-Language": "zh-CN"})
    assert r.status == 200, await r.text()
    return (await r.json())["replies"]


async def member_of(c: TestClient) -> int:
    cookie = next(m.value for m in c.session.cookie_jar if m.key == "everycsr_chat")
    sid = cookie.rpartition(".")[0]
    return (await ChannelAccount.get(channel="web", external_id=f"session/{sid}")).member_id


async def page(c: TestClient, code: str, **params: str) -> tuple[str, str | None]:
    r = await c.get(f"/questions/{code}", params={"lang": "zh_CN", **params})
    assert r.status == 200
    html = await r.text()
    m = re.search(r'name="csrf_token" value="([0-9a-f]+)"', html)
    return html, m.group(1) if m else None


async def post(c: TestClient, code: str, what: str, **form: str):  # type: ignore[no-untyped-def]
    return await c.post(f"/questions/{code}/{what}?lang=zh_CN", data=form, allow_redirects=False)


async def asked(visitors: Visitors) -> tuple[TestClient, Question]:
    asker = visitors.clients[0]
    await say(asker, f"提问 {QUESTION}")
    return asker, await Question.get(text=QUESTION)


async def test_answer_vote_accept_through_the_page(visitors: Visitors) -> None:
    asker, q = await asked(visitors)
    helper = await visitors.new()
    await say(helper, "你好")
    html, token = await page(helper, q.code)
    assert token and f'action="/questions/{q.code}/answer"' in html
    r = await post(helper, q.code, "answer", csrf_token=token, text=ANSWER)
    assert r.status == 303 and r.headers["Location"] == f"/questions/{q.code}?done=answer-ok"
    done, _ = await page(helper, q.code, done="answer-ok")
    assert "回答已发送给提问的用户" in done and ANSWER in done
    again = await post(helper, q.code, "answer", csrf_token=token, text=ANSWER)  # a resent form
    assert again.status == 303
    (answer,) = await Answer.filter(question_id=q.id)
    helper_id = await member_of(helper)
    assert answer.member_id == helper_id and answer.channel == "web"
    await wait_sent(member_id=q.member_id, purpose="system")  # the asker is told, as from the chat

    # the helper can neither vote for nor accept their own answer
    r = await post(helper, q.code, "vote", csrf_token=token, answer_id=str(answer.id))
    assert r.headers["Location"].endswith("done=vote-not_allowed")
    assert "不能给自己的回答投票" in (await page(helper, q.code, done="vote-not_allowed"))[0]
    r = await post(helper, q.code, "accept", csrf_token=token, answer_id=str(answer.id))
    assert r.headers["Location"].endswith("done=accept-not_allowed")
    assert (await Question.get(id=q.id)).status == "open"

    # the asker's page has the accept button; the asker's token is not the helper's
    html, asker_token = await page(asker, q.code)
    assert asker_token and asker_token != token and f'action="/questions/{q.code}/accept"' in html
    assert f'action="/questions/{q.code}/answer"' not in html  # no answering one's own question
    r = await post(asker, q.code, "vote", csrf_token=asker_token, answer_id=str(answer.id))
    assert r.headers["Location"].endswith("done=vote-ok")
    r = await post(asker, q.code, "vote", csrf_token=asker_token, answer_id=str(answer.id))
    assert r.headers["Location"].endswith("done=vote-already")
    assert await Vote.filter(answer_id=answer.id).count() == 1
    r = await post(asker, q.code, "accept", csrf_token=asker_token, answer_id=str(answer.id))
    assert r.headers["Location"].endswith("done=accept-ok")
    r = await post(asker, q.code, "accept", csrf_token=asker_token, answer_id=str(answer.id))
    assert r.headers["Location"].endswith("done=accept-already")
    q = await Question.get(id=q.id)
    assert q.status == "accepted" and q.accepted_answer_id == answer.id
    gamification = visitors.app[GAMIFICATION]
    summary = await gamification.summary(helper_id)
    assert summary.lifetime > 0 or summary.held > 0  # rewarded once, as from the chat
    first = summary.lifetime + summary.held
    await post(asker, q.code, "accept", csrf_token=asker_token, answer_id=str(answer.id))
    again_summary = await gamification.summary(helper_id)
    assert again_summary.lifetime + again_summary.held == first
    await wait_sent(member_id=helper_id, purpose="notification")
    settled, _ = await page(helper, q.code)
    assert "已采纳" in settled or "✔" in settled


async def test_forms_need_the_sessions_token_and_a_session(visitors: Visitors) -> None:
    _asker, q = await asked(visitors)
    helper = await visitors.new()
    await say(helper, "你好")
    _, token = await page(helper, q.code)
    assert token
    for form, headers in (
        ({"text": ANSWER}, {}),
        ({"text": ANSWER, "csrf_token": "0" * 64}, {}),
        ({"text": ANSWER, "csrf_token": token}, {"Origin": "https://evil.example"}),
    ):
        r = await helper.post(
            f"/questions/{q.code}/answer?lang=zh_CN", data=form, headers=headers, allow_redirects=False
        )
        text = await r.text()
        assert r.status == 403 and "表单已过期" in text and "Traceback" not in text
        assert ANSWER in text  # the draft is kept
    assert await Answer.filter(question_id=q.id).count() == 0

    stranger = await visitors.new()
    html, stranger_token = await page(stranger, q.code)
    assert stranger_token is None and 'href="/chat"' in html and "打开聊天" in html
    r = await stranger.post(
        f"/questions/{q.code}/answer?lang=zh_CN", data={"text": ANSWER, "csrf_token": token}, allow_redirects=False
    )
    assert r.status == 403 and "请先打开聊天" in await r.text()
    assert await Answer.filter(question_id=q.id).count() == 0


async def test_bad_input_gets_a_translated_page(visitors: Visitors) -> None:
    asker, q = await asked(visitors)
    helper = await visitors.new()
    await say(helper, "你好")
    _, token = await page(helper, q.code)
    r = await post(helper, q.code, "answer", csrf_token=token, text="   ")
    assert r.status == 400 and "请先写下您的回答" in await r.text()
    for bad in ("x", "-1", "99999999", "1" * 40):
        r = await post(helper, q.code, "vote", csrf_token=token, answer_id=bad)
        assert r.status == 400 and "这条答案已下线" in await r.text()
    r = await post(helper, "nosuch", "answer", csrf_token=token, text=ANSWER)
    assert r.status == 404
    r = await post(asker, q.code, "answer", csrf_token=(await page(asker, q.code))[1] or "", text=ANSWER)
    assert r.status == 403  # the asker has no answer form, and a forged post is refused politely
    assert await Answer.filter(question_id=q.id).count() == 0
    # the done key shows only known messages: nothing from the address is echoed
    html, _ = await page(helper, q.code, done="<script>alert(1)</script>")
    assert "alert(1)" not in html
