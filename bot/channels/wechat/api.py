"""Asynchronous client for the WeChat Official Account API (api.weixin.qq.com).

wechatpy's own client is synchronous (requests), so outbound calls go through aiohttp.

The access token comes from WeChat's *stable* token API (``POST /cgi-bin/stable_token``),
not ``GET /cgi-bin/token``: every fetch from the latter invalidates the previous token, so
several workers would knock each other's tokens out. In normal mode (``force_refresh``
false) every caller gets the same token while it is valid, so workers share one token
without talking to each other. Each process caches it until shortly before it expires.
When WeChat rejects it (40001/40014/42001) the call re-fetches in normal mode once (another
worker may hold a newer token, or the old one rolled over); only if WeChat hands back the
very token it just rejected is one ``force_refresh`` spent (limited to 20 a day, 30 s apart).
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import aiohttp

from bot.core.channel_registry import SendError

log = logging.getLogger(__name__)

TOKEN_ERRORS = frozenset({40001, 40014, 42001})
# outside the 48 h customer-service window / over the reply quota of that window
WINDOW_ERRORS = {
    45015: "outside WeChat's 48-hour customer-service window (errcode 45015); "
    "it can be sent after the member writes again",
    45047: "WeChat's customer-service message quota for this member is used up (errcode 45047); "
    "it can be sent after the member writes again",
}
UNREACHABLE_ERRORS = {
    43004: "the member has unsubscribed from the Official Account (errcode 43004)",
    43019: "the member has blocked the Official Account (errcode 43019)",
}
RETRY_ERRORS = {-1: 5.0, 45009: 60.0, 45011: 1.0}  # system busy, API frequency limits
TOKEN_MARGIN_SECONDS = 300
STABLE_TOKEN_PATH = "/cgi-bin/stable_token"
FORCE_REFRESH_REFUSED = frozenset({45009, 45011})  # daily force-refresh quota / too soon after the last


class WeChatAPIError(Exception):
    """WeChat answered with a non-zero ``errcode``."""

    def __init__(self, errcode: int, errmsg: str) -> None:
        super().__init__(f"WeChat API error {errcode}: {errmsg}")
        self.errcode = errcode
        self.errmsg = errmsg


def send_error(err: WeChatAPIError) -> SendError:
    """How the outbox should treat one WeChat error."""
    code = err.errcode
    if code in WINDOW_ERRORS:
        return SendError(WINDOW_ERRORS[code], hold=True)
    if code in UNREACHABLE_ERRORS:
        return SendError(UNREACHABLE_ERRORS[code], unreachable=True)
    if code in RETRY_ERRORS:
        return SendError(str(err), retry_after=RETRY_ERRORS[code])
    return SendError(str(err), permanent=True)


class WeChatAPI:
    """One Official Account's API client; share one instance per process."""

    def __init__(
        self,
        appid: str,
        secret: str,
        *,
        base: str = "https://api.weixin.qq.com",
        session: aiohttp.ClientSession | None = None,
        timeout: float = 10.0,
    ) -> None:
        self.appid = appid
        self.secret = secret
        self.base = base.rstrip("/")
        self._session = session
        self._own_session = session is None
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._token: str | None = None
        self._token_expires = 0.0
        self._lock = asyncio.Lock()

    @property
    def configured(self) -> bool:
        return bool(self.appid and self.secret)

    def _http(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
            self._own_session = True
        return self._session

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()

    async def access_token(self, *, refresh: bool = False, stale: str | None = None) -> str:
        """The cached token; fetched when missing, near expiry or ``refresh`` is asked.

        ``stale`` is the token a failed call used: if another task already replaced it,
        that new one is returned instead of fetching again. A forced refresh is spent only
        when WeChat's normal mode still hands out ``stale``.
        """
        async with self._lock:
            usable = self._token is not None and time.monotonic() < self._token_expires
            if usable and not (refresh and self._token == stale):
                return self._token  # type: ignore[return-value]
            token = await self._fetch_stable(force=False)
            if refresh and stale is not None and token == stale:
                log.warning("WeChat's stable token API returned the token it rejected; forcing a new one")
                token = await self._force_refresh(stale)
            return token

    async def _force_refresh(self, stale: str) -> str:
        """One ``force_refresh``; if WeChat refuses it (quota), take another worker's fresh token."""
        try:
            return await self._fetch_stable(force=True)
        except WeChatAPIError as err:
            if err.errcode not in FORCE_REFRESH_REFUSED:
                self._token = None
                raise
            # 45011: a force refresh happened moments ago, perhaps by another worker
            token = await self._fetch_stable(force=False)
            if token == stale:
                self._token = None  # known bad: don't hand it to the next call
                raise
            return token

    async def _fetch_stable(self, *, force: bool) -> str:
        data = await self._request(
            "POST",
            STABLE_TOKEN_PATH,
            body={
                "grant_type": "client_credential",
                "appid": self.appid,
                "secret": self.secret,
                "force_refresh": force,
            },
        )
        token = data.get("access_token")
        if not token:
            raise WeChatAPIError(-2, "no access_token in the token response")
        try:
            expires_in = max(int(data.get("expires_in", 7200)), 1)
        except (TypeError, ValueError):
            expires_in = 7200
        self._token = str(token)
        # refetch in WeChat's own hand-over window (its last 5 minutes), when normal mode
        # issues the next token while the old one keeps working
        self._token_expires = time.monotonic() + max(expires_in - TOKEN_MARGIN_SECONDS, expires_in / 2)
        return self._token

    async def call(self, path: str, body: dict[str, Any]) -> dict[str, Any]:
        """POST JSON with the access token; refreshes the token once if WeChat rejects it."""
        token = await self.access_token()
        try:
            return await self._request("POST", path, params={"access_token": token}, body=body)
        except WeChatAPIError as err:
            if err.errcode not in TOKEN_ERRORS:
                raise
            log.info("WeChat access token rejected (%s); refreshing", err.errcode)
        token = await self.access_token(refresh=True, stale=token)
        return await self._request("POST", path, params={"access_token": token}, body=body)

    async def send_custom(self, message: dict[str, Any]) -> dict[str, Any]:
        return await self.call("/cgi-bin/message/custom/send", message)

    async def create_menu(self, menu: dict[str, Any]) -> dict[str, Any]:
        return await self.call("/cgi-bin/menu/create", menu)

    async def _request(
        self, method: str, path: str, *, params: dict[str, str] | None = None, body: dict[str, Any] | None = None
    ) -> dict[str, Any]:
        # WeChat shows \\uXXXX literally unless the JSON carries real UTF-8
        data = json.dumps(body, ensure_ascii=False).encode("utf-8") if body is not None else None
        headers = {"Content-Type": "application/json; charset=utf-8"} if data is not None else None
        async with self._http().request(
            method, self.base + path, params=params, data=data, headers=headers, timeout=self._timeout
        ) as resp:
            raw = await resp.read()
            if resp.status >= 500:
                raise WeChatAPIError(-1, f"HTTP {resp.status}")
        try:
            payload = json.loads(raw)
        except ValueError as exc:
            raise WeChatAPIError(-3, "response is not JSON") from exc
        if not isinstance(payload, dict):
            raise WeChatAPIError(-3, "response is not a JSON object")
        code = int(payload.get("errcode", 0) or 0)
        if code:
            raise WeChatAPIError(code, str(payload.get("errmsg", "")))
        return payload
