"""A loopback Telegram Bot API server for tests and the outbox benchmark.

It speaks the real wire format (``POST /bot<token>/<method>``, form or JSON parameters,
``{"ok": true, "result": ...}`` / ``{"ok": false, "error_code": ..., "description": ...,
"parameters": {"retry_after": n}}``), records every call with its arrival time, and can
be told to answer 429, 403 "bot was blocked by the user", or to stall past the client's
timeout. Optionally it enforces Telegram's flood limits itself (a global token bucket
and a minimum interval per chat) and answers 429 when a sender breaks them.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections import defaultdict
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

BOT_ID = 123
BOT_USERNAME = "everycsr_test_bot"
MESSAGE_METHODS = {"sendMessage", "editMessageText"}


@dataclass
class Call:
    method: str
    params: dict[str, Any]
    at: float  # time.monotonic() on arrival
    status: int = 200

    @property
    def chat_id(self) -> str:
        return str(self.params.get("chat_id", ""))

    @property
    def text(self) -> str:
        return str(self.params.get("text", ""))

    @property
    def markup(self) -> dict[str, Any] | None:
        raw = self.params.get("reply_markup")
        if raw in (None, "", "null"):
            return None
        return raw if isinstance(raw, dict) else json.loads(raw)

    def buttons(self) -> list[dict[str, Any]]:
        markup = self.markup or {}
        return [b for row in markup.get("inline_keyboard", []) for b in row]


@dataclass
class Failure:
    code: int
    description: str
    retry_after: int | None = None
    times: int = 1  # how many matching calls get it; -1: forever
    skip: int = 0  # matching calls that pass before it applies


@dataclass
class Limits:
    """Flood limits the server enforces (None: off)."""

    global_rate: float = 30.0
    global_burst: float = 3.0  # slack for network jitter
    per_chat_interval: float = 1.0
    group_interval: float = 3.0
    jitter: float = 0.1  # tolerated early arrival per chat


@dataclass
class FakeTelegram:
    token: str = f"{BOT_ID}:ABC"
    limits: Limits | None = None
    calls: list[Call] = field(default_factory=list)
    _failures: dict[tuple[str, str], list[Failure]] = field(default_factory=lambda: defaultdict(list))
    _stall: dict[str, float] = field(default_factory=dict)
    _updates: list[dict[str, Any]] = field(default_factory=list)
    _update_cond: asyncio.Condition | None = None
    _next_message_id: int = 1000
    _bucket_tat: float = 0.0
    _last_per_chat: dict[str, float] = field(default_factory=dict)
    webhook: dict[str, Any] = field(default_factory=dict)
    _runner: web.AppRunner | None = None
    url: str = ""
    _closing: bool = False

    # --- scripting ---------------------------------------------------------------------
    def fail(
        self,
        method: str,
        chat_id: str | int,
        code: int,
        description: str,
        *,
        retry_after: int | None = None,
        times: int = 1,
        skip: int = 0,
    ) -> None:
        self._failures[(method, str(chat_id))].append(Failure(code, description, retry_after, times, skip))

    def rate_limit(self, chat_id: str | int, retry_after: int, *, times: int = 1) -> None:
        self.fail(
            "sendMessage",
            chat_id,
            429,
            f"Too Many Requests: retry after {retry_after}",
            retry_after=retry_after,
            times=times,
        )

    def block(self, chat_id: str | int) -> None:
        self.fail("sendMessage", chat_id, 403, "Forbidden: bot was blocked by the user", times=-1)

    def stall(self, chat_id: str | int, seconds: float) -> None:
        """Receive the request, then answer only after ``seconds`` (a client timeout)."""
        self._stall[str(chat_id)] = seconds

    async def push_update(self, update: dict[str, Any]) -> None:
        """Queue an update for getUpdates (long polling)."""
        assert self._update_cond is not None
        async with self._update_cond:
            self._updates.append(update)
            self._update_cond.notify_all()

    # --- reading --------------------------------------------------------------------------
    def sent(self, method: str = "sendMessage", chat_id: str | int | None = None) -> list[Call]:
        return [
            c
            for c in self.calls
            if c.method == method and c.status == 200 and (chat_id is None or c.chat_id == str(chat_id))
        ]

    def count(self, status: int) -> int:
        return sum(1 for c in self.calls if c.status == status)

    # --- server ---------------------------------------------------------------------------
    async def start(self, port: int = 0) -> "FakeTelegram":
        self._update_cond = asyncio.Condition()
        app = web.Application()
        app.router.add_post("/bot{token}/{method}", self._handle)
        app.router.add_get("/_calls", self._dump_calls)  # for a client in another process
        app.router.add_post("/_reset", self._reset)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", port)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def close(self) -> None:
        if self._update_cond is not None:  # release pending long polls at once
            async with self._update_cond:
                self._closing = True
                self._update_cond.notify_all()
        if self._runner:
            await self._runner.cleanup()

    async def _dump_calls(self, request: web.Request) -> web.Response:
        return web.json_response(
            [{"method": c.method, "chat_id": c.chat_id, "at": c.at, "status": c.status} for c in self.calls]
        )

    async def _reset(self, request: web.Request) -> web.Response:
        self.calls.clear()
        return web.json_response({"ok": True})

    async def _params(self, request: web.Request) -> dict[str, Any]:
        if request.content_type == "application/json":
            return dict(await request.json())
        form = await request.post()
        return {k: v for k, v in form.items() if isinstance(v, str)}

    @staticmethod
    def _error(code: int, description: str, retry_after: int | None = None) -> web.Response:
        body: dict[str, Any] = {"ok": False, "error_code": code, "description": description}
        if retry_after is not None:
            body["parameters"] = {"retry_after": retry_after}
        return web.json_response(body, status=code)

    def _scripted(self, method: str, chat_id: str) -> Failure | None:
        queue = self._failures.get((method, chat_id))
        if not queue:
            return None
        failure = queue[0]
        if failure.skip > 0:
            failure.skip -= 1
            return None
        if failure.times > 0:
            failure.times -= 1
            if failure.times == 0:
                queue.pop(0)
        return failure

    def _flood(self, chat_id: str, now: float) -> bool:
        """Whether this message breaks the enforced limits (then it is not delivered)."""
        lim = self.limits
        if lim is None:
            return False
        interval = lim.group_interval if chat_id.startswith("-") else lim.per_chat_interval
        last = self._last_per_chat.get(chat_id)
        if last is not None and now - last < interval - lim.jitter:
            return True
        step = 1.0 / lim.global_rate
        tat = max(self._bucket_tat, now)
        if tat - now > (lim.global_burst - 1) * step + 1e-9:
            return True
        self._bucket_tat = tat + step
        self._last_per_chat[chat_id] = now
        return False

    async def _handle(self, request: web.Request) -> web.Response:
        now = time.monotonic()
        if request.match_info["token"] != self.token:
            return self._error(401, "Unauthorized")
        method = request.match_info["method"]
        try:
            params = await self._params(request)
        except (ValueError, json.JSONDecodeError):
            return self._error(400, "Bad Request: can't parse parameters")
        call = Call(method, params, now)
        self.calls.append(call)
        chat_id = call.chat_id
        failure = self._scripted(method, chat_id)
        if failure is not None:
            call.status = failure.code
            return self._error(failure.code, failure.description, failure.retry_after)
        if chat_id in self._stall and method in MESSAGE_METHODS:
            await asyncio.sleep(self._stall[chat_id])
        if method in MESSAGE_METHODS and self._flood(chat_id, now):
            call.status = 429
            return self._error(429, "Too Many Requests: retry after 1", 1)
        handler = getattr(self, f"_m_{method}", None)
        if handler is None:
            call.status = 404
            return self._error(404, "Not Found: method not found")
        result = await handler(params)
        if isinstance(result, web.Response):
            call.status = result.status
            return result
        return web.json_response({"ok": True, "result": result})

    # --- methods --------------------------------------------------------------------------
    async def _m_getMe(self, p: dict[str, Any]) -> dict[str, Any]:
        return {
            "id": BOT_ID,
            "is_bot": True,
            "first_name": "EveryCSR",
            "username": BOT_USERNAME,
            "can_join_groups": True,
            "can_read_all_group_messages": False,
            "supports_inline_queries": False,
        }

    def _message(self, p: dict[str, Any], message_id: int | None = None) -> dict[str, Any]:
        if message_id is None:
            self._next_message_id += 1
            message_id = self._next_message_id
        chat_id = int(p["chat_id"])
        chat = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
        return {
            "message_id": message_id,
            "date": int(time.time()),
            "chat": chat,
            "from": {"id": BOT_ID, "is_bot": True, "first_name": "EveryCSR"},
            "text": p.get("text", ""),
        }

    async def _m_sendMessage(self, p: dict[str, Any]) -> Any:
        if not str(p.get("text", "")).strip():
            return self._error(400, "Bad Request: message text is empty")
        if len(str(p["text"]).encode("utf-16-le")) // 2 > 4096 + 4096:  # markup may double it
            return self._error(400, "Bad Request: message is too long")
        return self._message(p)

    async def _m_editMessageText(self, p: dict[str, Any]) -> Any:
        return self._message(p, int(p.get("message_id", 0)))

    async def _m_answerCallbackQuery(self, p: dict[str, Any]) -> bool:
        return True

    async def _m_setMyCommands(self, p: dict[str, Any]) -> bool:
        return True

    async def _m_setWebhook(self, p: dict[str, Any]) -> bool:
        self.webhook = dict(p)
        return True

    async def _m_deleteWebhook(self, p: dict[str, Any]) -> bool:
        self.webhook = {}
        return True

    async def _m_getUpdates(self, p: dict[str, Any]) -> list[dict[str, Any]]:
        assert self._update_cond is not None
        offset = int(p.get("offset", 0) or 0)
        limit = int(p.get("limit", 100) or 100)
        timeout = min(float(p.get("timeout", 0) or 0), 2.0)
        async with self._update_cond:
            # an offset confirms every update before it (Telegram forgets them)
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
            if not self._updates and timeout:
                try:
                    await asyncio.wait_for(
                        self._update_cond.wait_for(lambda: bool(self._updates) or self._closing), timeout
                    )
                except asyncio.TimeoutError:
                    pass
            return self._updates[:limit]


def serve_forever(port: int, enforce_limits: bool = True) -> None:
    """Run the server in its own process (the benchmark: its clock is not stalled by
    the sender's event loop)."""

    async def run() -> None:
        await FakeTelegram(limits=Limits() if enforce_limits else None).start(port)
        await asyncio.Event().wait()

    asyncio.run(run())


# --- real Update JSON, as Telegram posts it ------------------------------------------------
def tg_user(uid: int, lang: str | None = "zh-hans", first_name: str = "小明") -> dict[str, Any]:
    u: dict[str, Any] = {"id": uid, "is_bot": False, "first_name": first_name}
    if lang:
        u["language_code"] = lang
    return u


def _entities(text: str) -> list[dict[str, Any]]:
    """bot_command and mention entities the way Telegram marks them (UTF-16 offsets)."""
    import re

    out = []
    for m in re.finditer(r"(?<!\S)(/[A-Za-z0-9_]+(?:@[A-Za-z0-9_]+)?|@[A-Za-z0-9_]{5,})", text):
        kind = "bot_command" if m.group(1).startswith("/") else "mention"
        if kind == "bot_command" and m.start() != 0:
            continue
        offset = len(text[: m.start()].encode("utf-16-le")) // 2
        length = len(m.group(1).encode("utf-16-le")) // 2
        out.append({"type": kind, "offset": offset, "length": length})
    return out


def message_update(
    update_id: int,
    uid: int,
    text: str | None,
    *,
    chat_id: int | None = None,
    chat_type: str = "private",
    lang: str | None = "zh-hans",
    message_id: int | None = None,
    reply_to: dict[str, Any] | None = None,
    edited: bool = False,
    extra: dict[str, Any] | None = None,
) -> dict[str, Any]:
    chat_id = uid if chat_id is None else chat_id
    chat: dict[str, Any] = {"id": chat_id, "type": chat_type}
    if chat_type == "private":
        chat["first_name"] = "小明"
    else:
        chat["title"] = "EveryCSR 用户群"
    msg: dict[str, Any] = {
        "message_id": message_id or update_id,
        "date": 1764100000,
        "chat": chat,
        "from": tg_user(uid, lang),
    }
    if text is not None:
        msg["text"] = text
        ents = _entities(text)
        if ents:
            msg["entities"] = ents
    if reply_to is not None:
        msg["reply_to_message"] = reply_to
    if edited:
        msg["edit_date"] = 1764100100
    msg.update(extra or {})
    return {"update_id": update_id, "edited_message" if edited else "message": msg}


def bot_message(message_id: int, chat_id: int, text: str = "…", chat_type: str = "private") -> dict[str, Any]:
    """A message the bot sent earlier (what a button or a reply points at)."""
    return {
        "message_id": message_id,
        "date": 1764100000,
        "chat": {
            "id": chat_id,
            "type": chat_type,
            **({"first_name": "小明"} if chat_type == "private" else {"title": "群"}),
        },
        "from": {"id": BOT_ID, "is_bot": True, "first_name": "EveryCSR", "username": BOT_USERNAME},
        "text": text,
    }


def callback_update(
    update_id: int,
    uid: int,
    data: str,
    *,
    message_id: int = 500,
    chat_id: int | None = None,
    text: str = "您是不是想问：",
    lang: str | None = "zh-hans",
) -> dict[str, Any]:
    chat_id = uid if chat_id is None else chat_id
    return {
        "update_id": update_id,
        "callback_query": {
            "id": f"cb{update_id}",
            "from": tg_user(uid, lang),
            "chat_instance": "42",
            "data": data,
            "message": bot_message(message_id, chat_id, text, "private" if chat_id > 0 else "supergroup"),
        },
    }


def member_update(update_id: int, uid: int, old: str = "member", new: str = "kicked") -> dict[str, Any]:
    bot_user = {"id": BOT_ID, "is_bot": True, "first_name": "EveryCSR", "username": BOT_USERNAME}
    return {
        "update_id": update_id,
        "my_chat_member": {
            "chat": {"id": uid, "type": "private", "first_name": "小明"},
            "from": tg_user(uid),
            "date": 1764100000,
            "old_chat_member": {"status": old, "user": bot_user, **({"until_date": 0} if old == "kicked" else {})},
            "new_chat_member": {"status": new, "user": bot_user, **({"until_date": 0} if new == "kicked" else {})},
        },
    }


# --- pytest fixtures (import them into a test module) -------------------------------------
try:
    import pytest_asyncio
except ImportError:  # pragma: no cover - used by the benchmark without pytest
    pytest_asyncio = None  # type: ignore[assignment]

if pytest_asyncio is not None:

    @pytest_asyncio.fixture
    async def fake_tg() -> Any:
        fake = await FakeTelegram().start()
        try:
            yield fake
        finally:
            await fake.close()
