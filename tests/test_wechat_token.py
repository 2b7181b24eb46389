"""The stable access token shared by several workers, against the loopback WeChat API.

Each ``WeChatAPI`` instance stands for one worker process (its own cache and lock); the
fake implements ``/cgi-bin/stable_token`` with WeChat's semantics (normal mode hands every
caller the same token, ``force_refresh`` replaces it and is rationed).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import aiohttp
import pytest
import pytest_asyncio

from bot.channels.wechat.api import WeChatAPI, WeChatAPIError, send_error
from tests.fakes.wechat_api import FakeWeChatAPI
from tests.fakes.wechat_api import wechat_api_fixture  # noqa: F401  (fixture)

Workers = Callable[..., WeChatAPI]


def text(openid: str, content: str) -> dict:  # type: ignore[type-arg]
    return {"touser": openid, "msgtype": "text", "text": {"content": content}}


@pytest_asyncio.fixture
async def worker(wechat_api: FakeWeChatAPI) -> AsyncIterator[Workers]:
    """Makes WeChatAPI clients (one per simulated worker process) pointed at the fake."""
    made: list[WeChatAPI] = []

    def make(secret: str | None = None, appid: str | None = None) -> WeChatAPI:
        api = WeChatAPI(appid or wechat_api.appid, secret or wechat_api.secret, base=wechat_api.base + "/")
        made.append(api)
        return api

    yield make
    for api in made:
        await api.close()


def tokens_used(fake: FakeWeChatAPI) -> list[str]:
    return [token for _, token in fake.calls]


async def test_two_workers_interleaved_share_one_token_and_never_force(
    wechat_api: FakeWeChatAPI, worker: Workers
) -> None:
    a, b = worker(), worker()
    for i in range(6):
        await (a if i % 2 == 0 else b).send_custom(text("oShare", f"消息{i}"))
        if i == 2:  # an old tool fetching through cgi-bin/token does not disturb the stable token
            async with aiohttp.ClientSession() as s:
                await s.get(
                    wechat_api.base + "/cgi-bin/token",
                    params={"grant_type": "client_credential", "appid": wechat_api.appid, "secret": wechat_api.secret},
                )
    assert [m["text"]["content"] for m in wechat_api.sent] == [f"消息{i}" for i in range(6)]
    assert len(set(tokens_used(wechat_api))) == 1 and len(wechat_api.calls) == 6  # no 40001 ping-pong
    assert wechat_api.stable_token_requests == 2  # one fetch per worker, then each uses its cache
    assert wechat_api.force_refreshes == 0
    assert wechat_api.legacy_token_requests == 1  # only the old tool's


@pytest.mark.parametrize("how", ["expire", "revoke"])
async def test_rejected_token_recovers_with_one_normal_refetch(
    wechat_api: FakeWeChatAPI, worker: Workers, how: str
) -> None:
    a, b = worker(), worker()
    await a.send_custom(text("oA", "一"))
    await b.send_custom(text("oB", "一"))
    old = wechat_api.stable_token
    wechat_api.expire_tokens() if how == "expire" else wechat_api.revoke_tokens()
    before = wechat_api.stable_token_requests

    await a.send_custom(text("oA", "二"))
    assert wechat_api.stable_token_requests == before + 1  # exactly one re-fetch
    assert wechat_api.force_refreshes == 0
    new = wechat_api.stable_token
    assert new != old and tokens_used(wechat_api)[-2:] == [old, new]

    # the other worker, still holding the old token, picks up the same new one: no force either
    await b.send_custom(text("oB", "二"))
    assert tokens_used(wechat_api)[-2:] == [old, new]
    assert wechat_api.stable_token_requests == before + 2 and wechat_api.force_refreshes == 0
    assert [m["text"]["content"] for m in wechat_api.sent] == ["一", "一", "二", "二"]


async def test_token_still_handed_out_after_rejection_is_force_refreshed_once(
    wechat_api: FakeWeChatAPI, worker: Workers
) -> None:
    a, b = worker(), worker()
    await a.send_custom(text("oA", "一"))
    await b.send_custom(text("oB", "一"))
    bad = wechat_api.reject_stable_token()
    before = wechat_api.stable_token_requests

    result = await a.send_custom(text("oA", "二"))
    assert result["errcode"] == 0
    assert wechat_api.force_refreshes == 1
    assert wechat_api.stable_token_requests == before + 2  # the normal re-fetch (same token), then the forced one
    fresh = wechat_api.stable_token
    assert fresh != bad and tokens_used(wechat_api)[-2:] == [bad, fresh]

    # worker b's cached token died with the force refresh; normal mode now gives it the fresh one
    await b.send_custom(text("oB", "二"))
    assert wechat_api.force_refreshes == 1
    assert tokens_used(wechat_api)[-2:] == [bad, fresh]
    assert len(wechat_api.sent) == 4


@pytest.mark.parametrize("how", ["revoke", "reject"])
async def test_concurrent_calls_after_a_rejection_refresh_once(
    wechat_api: FakeWeChatAPI, worker: Workers, how: str
) -> None:
    api = worker()
    await api.send_custom(text("o0", "热身"))
    wechat_api.revoke_tokens() if how == "revoke" else wechat_api.reject_stable_token()
    before = wechat_api.stable_token_requests

    results = await asyncio.gather(*[api.send_custom(text(f"o{i}", f"并发{i}")) for i in range(8)])
    assert all(r["errcode"] == 0 for r in results)
    expected = 1 if how == "revoke" else 2  # reject: one normal re-fetch + one forced
    assert wechat_api.stable_token_requests == before + expected
    assert wechat_api.force_refreshes == (0 if how == "revoke" else 1)
    assert sorted(m["text"]["content"] for m in wechat_api.sent[1:]) == sorted(f"并发{i}" for i in range(8))


async def test_two_workers_needing_a_force_refresh_at_once_spend_only_one(
    wechat_api: FakeWeChatAPI, worker: Workers
) -> None:
    a, b = worker(), worker()
    await a.send_custom(text("oA", "一"))
    await b.send_custom(text("oB", "一"))
    wechat_api.reject_stable_token()
    wechat_api.stable_delay = 0.05  # both normal re-fetches overlap, so both see the rejected token

    await asyncio.gather(a.send_custom(text("oA", "二")), b.send_custom(text("oB", "二")))
    # the loser's force refresh is refused (45011, 30 s apart) and it takes the winner's token
    assert wechat_api.force_refreshes == 1
    assert len(wechat_api.sent) == 4 and len(set(tokens_used(wechat_api)[-2:])) == 1


async def test_force_refresh_quota_exhausted_fails_as_retry_later(wechat_api: FakeWeChatAPI, worker: Workers) -> None:
    api = worker()
    await api.send_custom(text("oQ", "一"))
    wechat_api.force_refreshes = wechat_api.force_refresh_daily_limit  # today's 20 are spent
    bad = wechat_api.reject_stable_token()

    with pytest.raises(WeChatAPIError) as info:
        await api.send_custom(text("oQ", "二"))
    assert info.value.errcode == 45009
    failure = send_error(info.value)
    assert failure.retry_after and not failure.permanent
    assert wechat_api.force_refresh_refusals == 1 and len(wechat_api.sent) == 1

    # the next day (or after another worker forced one) the retry gets through
    wechat_api.force_refreshes = 0
    await api.send_custom(text("oQ", "二"))
    assert wechat_api.stable_token != bad and len(wechat_api.sent) == 2


async def test_handover_near_expiry_keeps_the_old_token_working(wechat_api: FakeWeChatAPI, worker: Workers) -> None:
    old_worker = worker()
    await old_worker.send_custom(text("oH", "一"))
    first = wechat_api.stable_token
    wechat_api.advance(7200 - 200)  # inside WeChat's last 5 minutes: normal mode issues the next one

    new_worker = worker()
    await new_worker.send_custom(text("oH", "二"))
    second = wechat_api.stable_token
    assert second != first
    await old_worker.send_custom(text("oH", "三"))  # still cached, still valid until its expiry
    assert tokens_used(wechat_api) == [first, second, first]

    wechat_api.advance(300)  # now the first token has expired (42001): the old worker moves over
    await old_worker.send_custom(text("oH", "四"))
    assert tokens_used(wechat_api)[-2:] == [first, second]
    assert wechat_api.force_refreshes == 0 and len(wechat_api.sent) == 4


async def test_normal_mode_counts_down_and_force_replaces(wechat_api: FakeWeChatAPI) -> None:
    """The fake's wire behaviour the client relies on (WeChat's documentation)."""
    body = {"grant_type": "client_credential", "appid": wechat_api.appid, "secret": wechat_api.secret}
    url = wechat_api.base + "/cgi-bin/stable_token"
    async with aiohttp.ClientSession() as s:
        first = await (await s.post(url, json={**body, "force_refresh": False})).json()
        wechat_api.advance(1000)
        again = await (await s.post(url, json=body)).json()
        assert again["access_token"] == first["access_token"]
        assert first["expires_in"] == 7200 and 6190 <= again["expires_in"] <= 6200
        forced = await (await s.post(url, json={**body, "force_refresh": True})).json()
        assert forced["access_token"] != first["access_token"] and forced["expires_in"] == 7200
        too_soon = await (await s.post(url, json={**body, "force_refresh": True})).json()
        assert too_soon["errcode"] == 45011
        old = await (
            await s.post(
                wechat_api.base + "/cgi-bin/message/custom/send",
                params={"access_token": first["access_token"]},
                json=text("o", "x"),
            )
        ).json()
        assert old["errcode"] == 40001


@pytest.mark.parametrize("field, code", [("appid", 40013), ("secret", 40125)])
async def test_bad_credentials_are_permanent_errors(
    wechat_api: FakeWeChatAPI, worker: Workers, field: str, code: int
) -> None:
    api = worker(**{field: "wrong"})
    with pytest.raises(WeChatAPIError) as info:
        await api.send_custom(text("oX", "x"))
    assert info.value.errcode == code and send_error(info.value).permanent
    assert wechat_api.calls == [] and wechat_api.stable_token is None
