"""The web chat channel: ``/chat`` page and its JSON API ``POST /api/v1/chat``."""
from __future__ import annotations

import json
import uuid
from collections.abc import AsyncIterator

from aiohttp import web
from pydantic import BaseModel, Field, ValidationError, model_validator

from bot.app_keys import SERVICES
from bot.channels.registry import SendResult
from bot.messages import Incoming, Reply
from bot.models import OutboxMessage
from bot.settings import Settings
from bot.web import render
from bot.web.client import device_fingerprint

CHANNEL = "web"


class ChatRequest(BaseModel):
    user: str = Field(min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:@-]+$")
    text: str | None = Field(default=None, max_length=4000)
    action: str | None = Field(default=None, max_length=128)
    msg_id: str | None = Field(default=None, max_length=64)
    locale: str | None = Field(default=None, max_length=16)

    @model_validator(mode="after")
    def _one_of(self) -> "ChatRequest":
        if (self.text is None or not self.text.strip()) and not self.action:
            raise ValueError("send either a non-empty 'text' or an 'action'")
        return self


def json_error(status: int, message: str) -> web.Response:
    return web.json_response({"error": message}, status=status)


def reply_json(reply: Reply) -> dict:
    d = reply.to_dict()
    return {"text": d["text"], "choices": d["choices"], "cards": d["cards"], "kind": d["kind"]}


async def chat_api(request: web.Request) -> web.Response:
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
    services = request.app[SERVICES]
    incoming = Incoming(
        channel=CHANNEL,
        user=req.user,
        text=req.text.strip() if req.text else None,
        action=req.action,
        msg_id=req.msg_id,
        locale_hint=req.locale or request.headers.get("Accept-Language", "").split(",")[0] or None,
        # the device a share link is made from: its own opens of the link never pay
        meta={"fingerprint": device_fingerprint(request, services.settings.secret_key)},
    )
    replies = await services.pipeline.process(incoming)
    return web.json_response({"replies": [reply_json(r) for r in replies]})


async def chat_updates(request: web.Request) -> web.Response:
    """Messages that reached this web chat user later (agent replies, peer answers)."""
    user = request.query.get("user", "")
    try:
        after = int(request.query.get("after", "0"))
    except ValueError:
        return json_error(400, "after must be an integer")
    if not user or len(user) > 64:
        return json_error(400, "user is required")
    rows = (
        await OutboxMessage.filter(channel=CHANNEL, address=user, status="sent", id__gt=after)
        .order_by("id")
        .limit(50)
    )
    return web.json_response(
        {"messages": [{"id": r.id, **reply_json(Reply.from_dict(r.payload))} for r in rows]}
    )


async def chat_page(request: web.Request) -> web.Response:
    return render(request, "chat.html", default_user=f"web-{uuid.uuid4().hex[:12]}")


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
    app.router.add_get("/api/v1/chat/updates", chat_updates)

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        app[SERVICES].channels.register(WebChatSender())
        yield

    app.cleanup_ctx.append(ctx)
