"""The web chat channel: ``/chat`` page and its JSON API ``POST /api/v1/chat``.

The member is who the server says (``bot.web.chat_session``): the signed session cookie, or
the operator's logged-in visitor named with ``user`` + a valid ``user_hash``. Message ids
are the client's, so they are scoped to the account before they reach the pipeline: two
members may both send ``msg_id`` "1"."""
from __future__ import annotations

import hashlib
import json
from collections.abc import AsyncIterator
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field, ValidationError, model_validator

from bot.app_keys import SERVICES
from bot.channels.registry import SendResult
from bot.i18n import DEFAULT_LOCALE, normalize_locale
from bot.messages import Incoming, Reply
from bot.models import ChannelAccount, OutboxMessage
from bot.settings import Settings
from bot.web import render
from bot.web.client import device_fingerprint
from bot.web.chat_limits import inbound_allowed
from bot.web.chat_session import IdentityRefused, WebIdentity, identify, set_session_cookie
from bot.web.cors import cross_origin, preflight

CHANNEL = "web"
MAX_MSG_ID = 128  # TranscriptEntry.msg_id


class ChatRequest(BaseModel):
    # who the member is comes from the session or a verified user_hash (bot.web.chat_session,
    # which reads them from the body itself: without the operator's secret they are ignored)
    user: Any = None
    user_hash: Any = None
    text: str | None = Field(default=None, max_length=4000)
    action: str | None = Field(default=None, max_length=128)
    msg_id: str | None = Field(default=None, max_length=64)
    locale: str | None = Field(default=None, max_length=16)

    @model_validator(mode="after")
    def _one_of(self) -> "ChatRequest":
        if (self.text is None or not self.text.strip()) and not self.action:
            raise ValueError("send either a non-empty 'text' or an 'action'")
        return self


def json_error(status: int, message: str, **extra: object) -> web.Response:
    return web.json_response({"error": message, **extra}, status=status)


def reply_json(reply: Reply) -> dict:
    d = reply.to_dict()
    return {"text": d["text"], "choices": d["choices"], "cards": d["cards"], "kind": d["kind"]}


def scoped_msg_id(external_id: str, msg_id: str | None) -> str | None:
    """The client's message id within its account: dedup and the transcript's unique
    (channel, msg_id) then never mix two members' ids."""
    if not msg_id:
        return None
    scoped = f"{external_id}#{msg_id}"
    if len(scoped) <= MAX_MSG_ID:
        return scoped
    # "#" never starts an account id (sessions and operator users), so a hashed id is never
    # one another account could send as "<its id>#<msg_id>"
    return "#" + hashlib.sha256(scoped.encode()).hexdigest()


def _locale_of(request: web.Request, explicit: str | None) -> str:
    return (normalize_locale(explicit) or normalize_locale(request.headers.get("Accept-Language", "").split(",")[0])
            or DEFAULT_LOCALE)


def _too_fast(request: web.Request, locale: str, wait: float) -> web.Response:
    _ = request.app[SERVICES].translator.bind(locale)
    resp = json_error(429, _("You are sending messages too quickly. Please wait a moment and try again."),
                      retry_after=round(wait, 1))
    resp.headers["Retry-After"] = str(max(1, int(wait + 0.999)))
    return resp


@cross_origin
async def chat_api(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    settings = services.settings
    if request.content_type != "application/json":
        return json_error(415, "Content-Type must be application/json")
    wait = await inbound_allowed(services, settings, request, None)
    if wait:
        return _too_fast(request, _locale_of(request, None), wait)
    try:
        body = await request.json(loads=json.loads)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return json_error(400, "request body must be JSON")
    if not isinstance(body, dict):
        return json_error(400, "request body must be a JSON object")
    try:
        req = ChatRequest.model_validate(body)
    except ValidationError as exc:
        first = exc.errors()[0]
        where = ".".join(str(p) for p in first["loc"]) or "body"
        return json_error(400, f"{where}: {first['msg']}")
    try:
        who = identify(request, settings, body, create=True)
    except IdentityRefused as exc:
        return json_error(401, str(exc))
    assert who is not None
    wait = await inbound_allowed(services, settings, request, who.external_id)
    if wait:
        return _too_fast(request, _locale_of(request, req.locale), wait)
    incoming = Incoming(
        channel=CHANNEL,
        user=who.external_id,
        text=req.text.strip() if req.text else None,
        action=req.action,
        msg_id=scoped_msg_id(who.external_id, req.msg_id),
        locale_hint=req.locale or request.headers.get("Accept-Language", "").split(",")[0] or None,
        # the device a share link is made from: its own opens of the link never pay
        meta={"fingerprint": device_fingerprint(request, services.settings.secret_key)},
    )
    replies = await services.pipeline.process(incoming)
    resp = web.json_response({"replies": [reply_json(r) for r in replies]})
    set_session_cookie(resp, request, who)
    return resp


async def web_identity(request: web.Request) -> WebIdentity | None:
    """A GET request's identity (session cookie, or ``user`` + ``user_hash`` in the query)."""
    return identify(request, request.app[SERVICES].settings, request.query, create=False)


@cross_origin
async def chat_updates(request: web.Request) -> web.StreamResponse:
    """Messages that reached this member's web chat later (agent replies, peer answers)."""
    try:
        after = int(request.query.get("after", "0"))
    except ValueError:
        return json_error(400, "after must be an integer")
    try:
        who = await web_identity(request)
    except IdentityRefused as exc:
        return json_error(401, str(exc))
    if who is None:
        return json_error(401, "no chat session")
    account = await ChannelAccount.get_or_none(channel=CHANNEL, external_id=who.external_id)
    if account is None:
        return web.json_response({"messages": []})
    rows = (
        await OutboxMessage.filter(channel=CHANNEL, member_id=account.member_id, status="sent", id__gt=after)
        .order_by("id")
        .limit(50)
    )
    return web.json_response(
        {"messages": [{"id": r.id, **reply_json(Reply.from_dict(r.payload))} for r in rows]}
    )


async def chat_page(request: web.Request) -> web.Response:
    settings = request.app[SERVICES].settings
    who = identify(request, settings, {}, create=True)
    resp = render(request, "chat.html")
    set_session_cookie(resp, request, who)
    return resp


class WebChatSender:
    """Delivery to a web chat is storage: the page fetches sent messages."""

    name = CHANNEL
    rate_global = None
    rate_per_chat = None

    async def send(self, message: OutboxMessage, reply: Reply, locale: str) -> SendResult:
        return SendResult(provider_ref=f"web-{message.id}")


def setup(app: web.Application, settings: Settings) -> None:
    app.router.add_get("/chat", chat_page)
    app.router.add_post("/api/v1/chat", chat_api)
    app.router.add_route("OPTIONS", "/api/v1/chat", preflight)
    app.router.add_get("/api/v1/chat/updates", chat_updates)
    app.router.add_route("OPTIONS", "/api/v1/chat/updates", preflight)

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        app[SERVICES].channels.register(WebChatSender())
        yield

    app.cleanup_ctx.append(ctx)
