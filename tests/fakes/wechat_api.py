"""A loopback stand-in for api.weixin.qq.com speaking the real JSON wire format.

Implements ``GET /cgi-bin/token``, ``POST /cgi-bin/stable_token``,
``POST /cgi-bin/message/custom/send`` and ``POST /cgi-bin/menu/create`` with WeChat's error
codes: 40013 (bad appid), 40125 (bad secret), 40001 (invalid token), 42001 (expired token),
45009/45011 (force-refresh quota), 45015 (outside the 48 h window), 45047 (quota), 43004
(unsubscribed). Errors can be queued per path for a test.

The stable token follows WeChat's documented semantics: in normal mode every caller gets
the same token while it is valid, with the remaining ``expires_in``; in its last 5 minutes
a new one is issued and the old one keeps working until it expires; ``force_refresh``
issues a new token at once and the previous one stops working, at most
``force_refresh_daily_limit`` times (45009) and ``force_refresh_interval`` seconds apart
(45011). Stable tokens and ``/cgi-bin/token`` tokens are independent, as on WeChat. The
fake's clock can be moved forward with :meth:`FakeWeChatAPI.advance`.
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
from collections import defaultdict, deque
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web
from aiohttp.test_utils import TestServer

TOKEN_LIFETIME = 7200
HANDOVER_SECONDS = 300  # normal mode issues the next stable token in the last 5 minutes


@dataclass
class FakeWeChatAPI:
    appid: str = "wx0123456789abcdef"
    secret: str = "s3cr3t-0123456789abcdef0123456789"
    tokens: dict[str, bool] = field(default_factory=dict)  # token -> expired?
    token_requests: int = 0  # token fetches of either kind (cgi-bin/token and stable_token)
    legacy_token_requests: int = 0  # GET /cgi-bin/token only
    stable_token_requests: int = 0  # POST /cgi-bin/stable_token, normal and forced
    force_refreshes: int = 0  # forced refreshes granted (new token issued)
    force_refresh_refusals: int = 0  # forced refreshes answered 45009/45011
    force_refresh_daily_limit: int = 20
    force_refresh_interval: float = 30.0
    stable_delay: float = 0.0  # seconds the stable_token endpoint takes to answer
    sent: list[dict[str, Any]] = field(default_factory=list)
    menus: list[dict[str, Any]] = field(default_factory=list)
    calls: list[tuple[str, str]] = field(default_factory=list)  # (path, token)
    unsubscribed: set[str] = field(default_factory=set)
    stable_token: str | None = None  # the token normal mode hands out
    rejected: set[str] = field(default_factory=set)  # refused with 40001 though stable_token still returns them
    _expires_at: dict[str, float] = field(default_factory=dict)  # stable token -> fake-clock expiry
    _last_force: float | None = None
    _clock_offset: float = 0.0
    _errors: dict[str, deque[int]] = field(default_factory=lambda: defaultdict(deque))
    server: TestServer | None = None

    # --- test controls --------------------------------------------------------------------
    def fail_next(self, path: str, errcode: int, times: int = 1) -> None:
        """The next ``times`` calls to ``path`` (e.g. "message/custom/send") answer ``errcode``."""
        self._errors[path].extend([errcode] * times)

    def expire_tokens(self) -> None:
        """Every token issued so far answers 42001; normal mode then issues a new stable token."""
        for t in self.tokens:
            self.tokens[t] = True

    def revoke_tokens(self) -> None:
        """Every token issued so far answers 40001; normal mode then issues a new stable token."""
        self.tokens.clear()

    def reject_stable_token(self) -> str:
        """WeChat refuses the current stable token (40001) while normal mode still returns it;
        only a ``force_refresh`` gets past it. Returns that token."""
        assert self.stable_token is not None, "no stable token issued yet"
        self.rejected.add(self.stable_token)
        return self.stable_token

    def advance(self, seconds: float) -> None:
        """Move the fake's clock (token lifetimes, force-refresh spacing) forward."""
        self._clock_offset += seconds

    def now(self) -> float:
        return time.monotonic() + self._clock_offset

    @property
    def base(self) -> str:
        assert self.server is not None
        return str(self.server.make_url("")).rstrip("/")

    # --- wire --------------------------------------------------------------------------------
    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/cgi-bin/token", self._token)
        app.router.add_post("/cgi-bin/stable_token", self._stable_token)
        app.router.add_post("/cgi-bin/message/custom/send", self._custom_send)
        app.router.add_post("/cgi-bin/menu/create", self._menu_create)
        return app

    async def start(self) -> "FakeWeChatAPI":
        self.server = TestServer(self.app(), host="127.0.0.1")
        await self.server.start_server()
        return self

    async def close(self) -> None:
        if self.server is not None:
            await self.server.close()

    @staticmethod
    def _err(code: int, msg: str) -> web.Response:
        return web.json_response({"errcode": code, "errmsg": msg})

    def _bad_credentials(self, grant_type: Any, appid: Any, secret: Any) -> web.Response | None:
        if grant_type != "client_credential":
            return self._err(40002, "invalid grant_type")
        if appid != self.appid:
            return self._err(40013, "invalid appid")
        if secret != self.secret:
            return self._err(40125, "invalid appsecret")
        return None

    async def _token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        self.legacy_token_requests += 1
        q = request.query
        if (err := self._bad_credentials(q.get("grant_type"), q.get("appid"), q.get("secret"))) is not None:
            return err
        token = secrets.token_urlsafe(48)
        self.tokens[token] = False
        return web.json_response({"access_token": token, "expires_in": TOKEN_LIFETIME})

    def _issue_stable(self) -> str:
        token = secrets.token_urlsafe(48)
        self.tokens[token] = False
        self._expires_at[token] = self.now() + TOKEN_LIFETIME
        self.stable_token = token
        return token

    def _remaining(self, token: str) -> float:
        return self._expires_at.get(token, 0.0) - self.now()

    async def _stable_token(self, request: web.Request) -> web.Response:
        self.token_requests += 1
        self.stable_token_requests += 1
        if self.stable_delay:
            await asyncio.sleep(self.stable_delay)
        body = await self._json(request)
        if isinstance(body, web.Response):
            return body
        if (err := self._bad_credentials(body.get("grant_type"), body.get("appid"), body.get("secret"))) is not None:
            return err
        force = body.get("force_refresh", False)
        if not isinstance(force, bool):
            return self._err(47001, "data format error")
        current = self.stable_token
        if force:
            now = self.now()
            if self.force_refreshes >= self.force_refresh_daily_limit:
                self.force_refresh_refusals += 1
                return self._err(45009, "reach max api daily quota limit")
            if self._last_force is not None and now - self._last_force < self.force_refresh_interval:
                self.force_refresh_refusals += 1
                return self._err(45011, "api minute-quota reach limit mostly 5000 per minute")
            self.force_refreshes += 1
            self._last_force = now
            if current is not None:  # the previous token stops working at once
                self.tokens.pop(current, None)
                self._expires_at.pop(current, None)
                self.rejected.discard(current)
            token = self._issue_stable()
        else:
            valid = (
                current is not None
                and current in self.tokens
                and not self.tokens[current]
                and self._remaining(current) > HANDOVER_SECONDS
            )
            # the old token keeps working until its own expiry (hand-over), unless expired/revoked
            token = current if valid else self._issue_stable()  # type: ignore[assignment]
        return web.json_response({"access_token": token, "expires_in": round(self._remaining(token))})

    def _check_token(self, request: web.Request, path: str) -> web.Response | None:
        token = request.query.get("access_token", "")
        self.calls.append((path, token))
        if token not in self.tokens or token in self.rejected:
            return self._err(40001, "invalid credential, access_token is invalid or not latest")
        if self.tokens[token] or (token in self._expires_at and self._remaining(token) <= 0):
            return self._err(42001, "access_token expired")
        queued = self._errors[path]
        if queued:
            code = queued.popleft()
            return self._err(
                code,
                {
                    45015: "response out of time limit or subscription is canceled",
                    45047: "out of response count limit",
                    43004: "require subscribe",
                }.get(code, "error"),
            )
        return None

    async def _json(self, request: web.Request) -> dict[str, Any] | web.Response:
        raw = await request.read()
        try:
            body = json.loads(raw.decode("utf-8"))
        except (ValueError, UnicodeDecodeError):
            return self._err(47001, "data format error")
        if not isinstance(body, dict):
            return self._err(47001, "data format error")
        return body

    async def _custom_send(self, request: web.Request) -> web.Response:
        if (err := self._check_token(request, "message/custom/send")) is not None:
            return err
        body = await self._json(request)
        if isinstance(body, web.Response):
            return body
        if not body.get("touser"):
            return self._err(40003, "invalid openid")
        if body["touser"] in self.unsubscribed:
            return self._err(43004, "require subscribe")
        mtype = body.get("msgtype")
        if mtype not in {"text", "news", "image", "voice", "video", "music", "mpnews", "msgmenu", "wxcard"}:
            return self._err(40008, "invalid message type")
        if mtype == "text" and len(body.get("text", {}).get("content", "").encode("utf-8")) > 2048:
            return self._err(45002, "content size out of limit")
        if mtype == "news" and len(body.get("news", {}).get("articles", [])) != 1:
            return self._err(45008, "article size out of limit")
        self.sent.append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok", "msgid": 1000 + len(self.sent)})

    async def _menu_create(self, request: web.Request) -> web.Response:
        if (err := self._check_token(request, "menu/create")) is not None:
            return err
        body = await self._json(request)
        if isinstance(body, web.Response):
            return body
        buttons = body.get("button")
        if not isinstance(buttons, list) or not 1 <= len(buttons) <= 3:
            return self._err(40016, "invalid button size")
        for b in buttons:
            if len(b.get("sub_button", [])) > 5:
                return self._err(40017, "invalid sub button size")
        self.menus.append(body)
        return web.json_response({"errcode": 0, "errmsg": "ok"})


class WeChatCallbacks:
    """Builds callbacks to ``/wechat`` exactly as WeChat's servers do, and reads the answers.

    Query parameters per mode (WeChat's documentation): plain ``signature, timestamp,
    nonce, openid``; compatible and safe add ``encrypt_type=aes`` and ``msg_signature``,
    with the message AES-encrypted by wechatpy's ``WeChatCrypto`` (compatible mode keeps
    the plaintext fields beside ``Encrypt``).
    """

    def __init__(self, token: str, aes_key: str, appid: str, account: str = "gh_0123456789ab") -> None:
        from wechatpy.crypto import WeChatCrypto

        self.token = token
        self.appid = appid
        self.account = account
        self.crypto = WeChatCrypto(token, aes_key, appid)

    @staticmethod
    def text_xml(
        openid: str,
        content: str,
        msg_id: str,
        *,
        create_time: int | None = None,
        account: str = "gh_0123456789ab",
        extra: str = "",
    ) -> str:
        import time as _time

        ts = create_time or int(_time.time())
        return (
            f"<xml><ToUserName><![CDATA[{account}]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
            f"</FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[text]]></MsgType>"
            f"<Content><![CDATA[{content}]]></Content><MsgId>{msg_id}</MsgId>{extra}</xml>"
        )

    @staticmethod
    def event_xml(
        openid: str, event: str, key: str = "", *, create_time: int | None = None, account: str = "gh_0123456789ab"
    ) -> str:
        import time as _time

        ts = create_time or int(_time.time())
        return (
            f"<xml><ToUserName><![CDATA[{account}]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
            f"</FromUserName><CreateTime>{ts}</CreateTime><MsgType><![CDATA[event]]></MsgType>"
            f"<Event><![CDATA[{event}]]></Event><EventKey><![CDATA[{key}]]></EventKey></xml>"
        )

    @staticmethod
    def media_xml(openid: str, msg_type: str, msg_id: str, extra: str = "") -> str:
        import time as _time

        return (
            f"<xml><ToUserName><![CDATA[gh_0123456789ab]]></ToUserName><FromUserName><![CDATA[{openid}]]>"
            f"</FromUserName><CreateTime>{int(_time.time())}</CreateTime><MsgType><![CDATA[{msg_type}]]>"
            f"</MsgType><MediaId><![CDATA[m1]]></MediaId><MsgId>{msg_id}</MsgId>{extra}</xml>"
        )

    def build(
        self, xml: str, *, mode: str = "safe", openid: str = "", timestamp: int | None = None, nonce: str | None = None
    ) -> tuple[dict[str, str], bytes]:
        """(query params, body) for one message in ``plain``, ``compatible`` or ``safe`` mode."""
        import time as _time

        from bot.channels.wechat.signature import sign

        ts = str(timestamp if timestamp is not None else int(_time.time()))
        nonce = nonce or secrets.token_hex(5)
        params = {"signature": sign(self.token, ts, nonce), "timestamp": ts, "nonce": nonce, "openid": openid}
        if mode == "plain":
            return params, xml.encode("utf-8")
        encrypted = self.crypto.encrypt_message(xml, nonce, ts)
        # the envelope wechatpy renders is what WeChat posts: Encrypt (+ signature fields)
        import xml.etree.ElementTree as ET

        root = ET.fromstring(encrypted)
        encrypt = root.findtext("Encrypt") or ""
        params.update(encrypt_type="aes", msg_signature=sign(self.token, ts, nonce, encrypt))
        if mode == "safe":
            body = (
                f"<xml><ToUserName><![CDATA[{self.account}]]></ToUserName>"
                f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>"
            )
        else:  # compatible: plaintext fields and the ciphertext side by side
            body = xml.replace("</xml>", f"<Encrypt><![CDATA[{encrypt}]]></Encrypt></xml>")
        return params, body.encode("utf-8")

    def read_reply(self, text: str, params: dict[str, str]) -> dict[str, str]:
        """Decrypt (when encrypted) and parse a passive reply; {} for "success"."""
        from bot.channels.wechat.xmlparse import parse_xml

        if text in ("success", ""):
            return {}
        if params.get("encrypt_type") == "aes":
            envelope = parse_xml(text.encode("utf-8"))
            text = self.crypto.decrypt_message(
                {"Encrypt": envelope["Encrypt"]}, envelope["MsgSignature"], envelope["TimeStamp"], envelope["Nonce"]
            )
        return parse_xml(text.encode("utf-8"))


# Credentials the WeChat tests configure (EncodingAESKey: 43 characters of base64)
TEST_TOKEN = "everycsr-test-token"
TEST_AES_KEY = "abcdefghijklmnopqrstuvwxyz0123456789ABCDEFG"
TEST_APPID = "wx0123456789abcdef"


# --- pytest fixtures for the WeChat tests (import them into a test module) -----------------------
import asyncio as _asyncio  # noqa: E402
import shutil as _shutil  # noqa: E402
import threading as _threading  # noqa: E402
from pathlib import Path as _Path  # noqa: E402

import pytest as _pytest  # noqa: E402
import pytest_asyncio as _pytest_asyncio  # noqa: E402


@_pytest_asyncio.fixture(name="wechat_api")
async def wechat_api_fixture():  # type: ignore[no-untyped-def]
    """The loopback api.weixin.qq.com."""
    fake = await FakeWeChatAPI(appid=TEST_APPID).start()
    yield fake
    await fake.close()


@_pytest.fixture(name="wx")
def wx_fixture() -> WeChatCallbacks:
    """WeChat's side of the callback protocol."""
    return WeChatCallbacks(TEST_TOKEN, TEST_AES_KEY, TEST_APPID)


@_pytest.fixture(scope="session")
def wechat_kb_db(tmp_path_factory: _pytest.TempPathFactory) -> _Path:
    """A SQLite file with the sample knowledge base, imported once per session."""
    from bot.core import storage
    from tests.conftest import SAMPLE_KB

    path = tmp_path_factory.mktemp("wechat_kb") / "kb.sqlite3"

    async def build() -> None:
        from bot.cli import import_kb

        await storage.open_db(f"sqlite://{path}", create_schema=True)
        try:
            await import_kb(SAMPLE_KB, quiet=True)
        finally:
            await storage.close_db()

    # its own thread and loop: the test's loop is not running yet, nor should it be borrowed
    worker = _threading.Thread(target=lambda: _asyncio.run(build()))
    worker.start()
    worker.join()
    return path


@_pytest_asyncio.fixture(name="client")
async def wechat_client(settings, wechat_kb_db, tmp_path):  # type: ignore[no-untyped-def]
    """Like conftest's ``client`` (app + sample knowledge base), starting from a copied
    database instead of re-importing the knowledge base for every test."""
    from aiohttp.test_utils import TestClient, TestServer

    from bot.app import create_app

    target = settings.database_url.removeprefix("sqlite://")
    _shutil.copy(wechat_kb_db, target)
    app = create_app(settings, db_setup="schema")
    async with TestClient(TestServer(app)) as c:
        yield c
