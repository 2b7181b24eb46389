"""Forwarded answers cannot be farmed with GETs or from other sites (issue 16): link
previewers, crawlers and prefetchers fetch ``/f/<token>`` and pay nobody; only a post from the
page itself, with its session's form token and the service's own origin, records a reader."""

from __future__ import annotations

from bot.core.models import ChannelAccount
from gamification import ledger
from gamification.models import ForwardEngagement, ForwardLink, ForwardRating
from tests.community_helpers import chat
from tests.forward_helpers import CSRF, open_forward, own_origin, session_token, tap_helped, tap_rating

PREVIEWERS = (
    "Mozilla/5.0 (Linux; Android 12) MicroMessenger/8.0 WeChat link preview",
    "Googlebot/2.1",
    "facebookexternalhit/1.1",
    "Slackbot-LinkExpanding 1.0",
)


async def share(client, user: str) -> str:  # type: ignore[no-untyped-def]
    replies = await chat(client, user, text="我的流量还剩多少，怎么查？")
    fw = next(c["action"] for c in replies[0]["choices"] if c["action"].startswith("fw:"))
    shared = await chat(client, user, action=fw)
    return shared[0]["cards"][0]["url"].rsplit("/f/", 1)[1]


async def sharer_points(user: str) -> tuple[int, int]:
    account = await ChannelAccount.get(channel="web", external_id=user)
    bal = await ledger.balance_of(account.member_id)
    return bal.balance, bal.held


async def test_gets_by_previewers_and_bots_pay_nothing(client) -> None:  # type: ignore[no-untyped-def]
    token = await share(client, "fp-sharer1")
    for agent in PREVIEWERS * 3:
        client.session.cookie_jar.clear()
        page = await client.get(f"/f/{token}", headers={"User-Agent": agent})
        assert page.status == 200 and page.headers["Cache-Control"] == "no-store"
        html = await page.text()
        assert CSRF.search(html) and 'action="/f/' in html  # the reader's buttons are there
    assert not await ForwardEngagement.filter(link__token=token).exists()
    assert await sharer_points("fp-sharer1") == (0, 0)
    # a HEAD (what some prefetchers send) is a GET too
    assert (await client.head(f"/f/{token}")).status == 200
    assert not await ForwardEngagement.filter(link__token=token).exists()


async def test_the_page_issues_an_httponly_session_its_form_is_bound_to(client) -> None:  # type: ignore[no-untyped-def]
    token = await share(client, "fp-sharer2")
    client.session.cookie_jar.clear()
    page = await client.get(f"/f/{token}", headers={"User-Agent": "reader"})
    cookie = page.cookies["everycsr_chat"]
    assert cookie["httponly"] and cookie["samesite"] == "Lax"
    assert CSRF.search(await page.text()).group(1) == session_token(client)  # type: ignore[union-attr]


async def test_posts_from_other_sites_or_without_the_token_are_refused(client) -> None:  # type: ignore[no-untyped-def]
    token = await share(client, "fp-sharer3")
    ua = {"User-Agent": "victim-phone"}
    csrf = await open_forward(client, token, ua)
    host = client.make_url("").host
    port = client.make_url("").port
    refused = [
        ({"csrf_token": csrf}, {"Origin": "https://evil.example"}),  # another site's page, with the cookie
        ({"csrf_token": csrf}, {"Origin": f"https://{host}:{port}"}),  # same host, other scheme
        ({"csrf_token": csrf}, {"Origin": "null"}),
        ({"csrf_token": csrf}, {"Referer": "https://evil.example/page"}),
        ({}, {"Origin": own_origin(client)}),  # no token
        ({"csrf_token": "0" * 64}, {"Origin": own_origin(client)}),  # a made-up token
    ]
    for action in ("read", "rate"):
        for form, headers in refused:
            resp = await client.post(f"/f/{token}/{action}", data={**form, "accurate": "1"}, headers={**ua, **headers})
            assert resp.status == 403, (action, form, headers)
    # a token from another visitor's session does not fit this visitor's cookie
    client.session.cookie_jar.clear()
    resp = await client.post(
        f"/f/{token}/read", data={"csrf_token": csrf}, headers={**ua, "Origin": own_origin(client)}
    )
    assert resp.status == 403
    assert not await ForwardEngagement.filter(link__token=token).exists()
    assert not await ForwardRating.filter(engagement__link__token=token).exists()
    assert await sharer_points("fp-sharer3") == (0, 0)
    # the same person tapping on the page itself is paid for, once
    assert (await tap_helped(client, token, ua)).status == 200
    assert (await tap_helped(client, token, ua)).status == 200
    assert await ForwardEngagement.filter(link__token=token).count() == 1
    assert (await sharer_points("fp-sharer3"))[1] > 0


async def test_rating_first_engages_once_and_rates_once(client) -> None:  # type: ignore[no-untyped-def]
    token = await share(client, "fp-sharer4")
    ua = {"User-Agent": "rater-phone"}
    assert (await tap_rating(client, token, False, ua)).status == 200
    held = (await sharer_points("fp-sharer4"))[1]
    assert held > 0  # a reader who rates has read it: the same rules pay the sharer
    page = await (await client.get(f"/f/{token}", headers=ua)).text()
    assert 'action="/f/' not in page  # nothing left to tap
    assert (await tap_rating(client, token, True, ua)).status == 200
    assert (await tap_helped(client, token, ua)).status == 200
    assert [r.accurate for r in await ForwardRating.filter(engagement__link__token=token)] == [False]
    assert await ForwardEngagement.filter(link__token=token).count() == 1
    assert (await sharer_points("fp-sharer4"))[1] == held
    bad = await client.post(
        f"/f/{token}/rate",
        data={"csrf_token": session_token(client), "accurate": "maybe"},
        headers={**ua, "Origin": own_origin(client)},
    )
    assert bad.status == 400


async def test_the_sharers_own_session_cannot_read_or_rate(client) -> None:  # type: ignore[no-untyped-def]
    client.session.cookie_jar.clear()
    first = await client.post(
        "/api/v1/chat", json={"text": "我的流量还剩多少，怎么查？"}, headers={"User-Agent": "other-ua"}
    )
    fw = next(c["action"] for c in (await first.json())["replies"][0]["choices"] if c["action"].startswith("fw:"))
    shared = await client.post("/api/v1/chat", json={"action": fw}, headers={"User-Agent": "other-ua"})
    token = (await shared.json())["replies"][0]["cards"][0]["url"].rsplit("/f/", 1)[1]
    link = await ForwardLink.get(token=token)
    # the sharer's session, from a browser they never shared from
    page = await (await client.get(f"/f/{token}", headers={"User-Agent": "sharers-tablet"})).text()
    assert 'action="/f/' not in page
    for action in ("read", "rate"):
        resp = await client.post(
            f"/f/{token}/{action}",
            data={"csrf_token": session_token(client), "accurate": "1"},
            headers={"User-Agent": "sharers-tablet", "Origin": own_origin(client)},
        )
        assert resp.status == 403
    bal = await ledger.balance_of(link.sharer_id)
    assert (bal.balance, bal.held) == (0, 0)
    assert not await ForwardEngagement.filter(link_id=link.id).exists()
