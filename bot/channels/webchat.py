"""The web chat channel: ``/chat`` page and its JSON API ``POST /api/v1/chat``.

The member is who the server says (``bot.web.chat_session``): the signed session cookie, or
the operator's logged-in visitor named with ``user`` + a valid ``user_hash``. Message ids
are the client's, so they are scoped to the account before they reach the pipeline: two
members may both send ``msg_id`` "1"."""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
from collections import Counter
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

from aiohttp import web
from pydantic import BaseModel, Field, ValidationError, model_validator

from bot.core.app_keys import SERVICES
from bot.core.channel_registry import SendResult
from bot.core.clock import utcnow
from bot.channels.webchat_history import PAGE, member_history
from bot.core.i18n import DEFAULT_LOCALE, normalize_locale
from bot.core.messages import Incoming, Reply
from bot.core.models import ChannelAccount, Member, OutboxMessage
from bot.core.render import in_script
from bot.core.settings import Settings
from bot.web import render
from bot.web.client import client_ip, device_fingerprint
from bot.web.chat_limits import inbound_allowed
from bot.web.chat_session import IdentityRefused, WebIdentity, identify, identify_get, set_session_cookie
from bot.web.cors import cross_origin, json_error, preflight
from bot.web import sse

log = logging.getLogger(__name__)

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


def reply_json(reply: Reply) -> dict[str, Any]:
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
    return (
        normalize_locale(explicit)
        or normalize_locale(request.headers.get("Accept-Language", "").split(",")[0])
        or DEFAULT_LOCALE
    )


def _too_fast(request: web.Request, locale: str, wait: float) -> web.Response:
    _ = request.app[SERVICES].translator.bind(locale)
    resp = json_error(
        429, _("You are sending messages too quickly. Please wait a moment and try again."), retry_after=round(wait, 1)
    )
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
    assert services.pipeline is not None  # built with the services, before any request
    replies = await services.pipeline.process(incoming)
    resp = web.json_response({"replies": [reply_json(r) for r in replies]})
    set_session_cookie(resp, request, who)
    return resp


async def web_identity(request: web.Request) -> WebIdentity | None:
    """A GET request's identity (session cookie, or ``user`` + ``user_hash`` in the headers,
    never the query string: ``bot.web.chat_session.identify_get``)."""
    return identify_get(request, request.app[SERVICES].settings)


def events_topic(member_id: int) -> str:
    """The fan-out topic of one member's web chat (``bot.core.fanout``)."""
    return f"webchat:{member_id}"


def message_json(row: OutboxMessage, locale: str) -> dict[str, Any]:
    """A sent outbox row as the page shows it, in the member's script."""
    return {"id": row.id, **reply_json(in_script([Reply.from_dict(row.payload)], locale)[0])}


async def _member(request: web.Request) -> Member | web.Response | None:
    """The member behind a GET request's session (or verified user); a 401 response when
    there is no identity, None when the identity has never written (no member yet)."""
    try:
        who = await web_identity(request)
    except IdentityRefused as exc:
        return json_error(401, str(exc))
    if who is None:
        return json_error(401, "no chat session")
    account = await ChannelAccount.get_or_none(channel=CHANNEL, external_id=who.external_id).prefetch_related("member")
    return account.member if account else None


async def _sent_after(request: web.Request, member: Member, after: int, limit: int = 50) -> list[dict[str, Any]]:
    """The polling fallback reads through the same ordered source as the event stream, without
    the grace (a poll comes back every few seconds anyway; a row sent now is shown now)."""
    settings = request.app[SERVICES].settings
    source = MemberEvents(member, 0.0, settings.webchat_events_hold_seconds)
    return (await source.ready(after, limit)).items


def _int_query(request: web.Request, key: str, default: int | None) -> int | None:
    raw = request.query.get(key)
    if raw is None or raw == "":
        return default
    if not (raw.isascii() and raw.isdigit()):
        raise ValueError(key)
    return int(raw)


@cross_origin
async def chat_updates(request: web.Request) -> web.StreamResponse:
    """Messages that reached this member's web chat later (agent replies, peer answers): the
    fallback for a browser whose event stream does not work."""
    try:
        after = _int_query(request, "after", 0) or 0
    except ValueError:
        return json_error(400, "after must be a non-negative integer")
    member = await _member(request)
    if isinstance(member, web.Response):
        return member
    if member is None:
        return web.json_response({"messages": []})
    return web.json_response({"messages": await _sent_after(request, member, after)})


@cross_origin
async def chat_history(request: web.Request) -> web.StreamResponse:
    """The member's conversation for the page to show again: ``?before=<id>`` pages back."""
    try:
        before = _int_query(request, "before", None)
        limit = _int_query(request, "limit", PAGE) or PAGE
    except ValueError as exc:
        return json_error(400, f"{exc} must be a non-negative integer")
    member = await _member(request)
    if isinstance(member, web.Response):
        return member
    if member is None:
        return web.json_response({"entries": [], "more": False, "last_update": 0})
    history = await member_history(request.app[SERVICES], member, before=before, limit=limit)
    return web.json_response(history.to_dict())


@dataclass
class StreamLimits:
    """Event streams open in this process, per member and per client address: a page open
    in many tabs, or a script, cannot hold unbounded connections and database readers."""

    per_member: int
    per_ip: int
    members: Counter[int] = field(default_factory=Counter)
    addresses: Counter[str] = field(default_factory=Counter)

    @contextlib.contextmanager
    def hold(self, member_id: int, address: str) -> Iterator[bool]:
        """True (and counted until the block ends) when one more stream is allowed."""
        if (self.per_member and self.members[member_id] >= self.per_member) or (
            self.per_ip and self.addresses[address] >= self.per_ip
        ):
            yield False
            return
        self.members[member_id] += 1
        self.addresses[address] += 1
        try:
            yield True
        finally:
            self.members[member_id] -= 1
            self.addresses[address] -= 1
            # forget the ones at zero: memory holds only streams open now
            self.members += Counter()
            self.addresses += Counter()


STREAM_LIMITS: web.AppKey[StreamLimits] = web.AppKey("webchat_stream_limits", StreamLimits)


class MemberEvents:
    """The member's sent web chat rows, strictly in id order (``bot.web.sse.OrderedSource``).

    Rows are read from the outbox table, not taken from the live events, so a row whose
    send finished after a higher one's is not skipped. Two holds keep the order: a row is
    streamed once it is ``grace`` old (a lower id committing a moment later goes first),
    and a lower row still queued holds back the rows after it for at most ``hold``."""

    def __init__(self, member: Member, grace: float, hold: float) -> None:
        self.member, self.grace, self.hold = member, grace, hold

    async def ready(self, after: int, limit: int) -> sse.Ready:
        q = OutboxMessage.filter(channel=CHANNEL, member_id=self.member.id, id__gt=after)
        # "sending" too: the sender publishes just before the row is marked sent
        rows = await q.filter(status__in=("sending", "sent")).order_by("id").limit(limit + 1)
        if not rows:
            return sse.Ready([])
        more = len(rows) > limit
        rows = rows[:limit]
        now = utcnow()
        pending = await (
            q.filter(
                status__in=("queued", "failed"), id__lt=rows[-1].id, created_at__gt=now - timedelta(seconds=self.hold)
            )
            .order_by("id")
            .first()
        )
        items: list[dict[str, Any]] = []
        retry: float | None = None
        for row in rows:
            if pending is not None and row.id > pending.id:
                left = (pending.created_at + timedelta(seconds=self.hold) - now).total_seconds()
                retry = max(0.05, min(left, 0.5))  # its own send wakes the stream sooner
                break
            young = (row.created_at + timedelta(seconds=self.grace) - now).total_seconds()
            if young > 0:
                retry = young
                break
            items.append(message_json(row, self.member.locale))
        return sse.Ready(items, more=more and len(items) == len(rows), retry_in=retry)


@cross_origin
async def chat_events(request: web.Request) -> web.StreamResponse:
    """Server-sent events: each message sent to this member's web chat, in id order, after
    those sent since ``Last-Event-ID`` / ``?after=`` (caught up page by page)."""
    member = await _member(request)
    if isinstance(member, web.Response):
        return member
    if member is None:  # nothing can be sent to someone who has never written
        return json_error(404, "no conversation yet")
    settings = request.app[SERVICES].settings
    after = sse.last_event_id(request)
    with request.app[STREAM_LIMITS].hold(member.id, client_ip(request)) as allowed:
        if not allowed:
            return json_error(
                429, "too many event streams open; close another chat tab or poll /api/v1/chat/updates", retry_after=30
            )
        subscription = request.app[SERVICES].fanout.subscribe(events_topic(member.id))
        source = MemberEvents(member, settings.webchat_events_grace_seconds, settings.webchat_events_hold_seconds)
        return await sse.serve_ordered(
            request, subscription, source, after=after, max_rows=settings.webchat_events_max_rows
        )


async def chat_page(request: web.Request) -> web.Response:
    settings = request.app[SERVICES].settings
    who = identify(request, settings, {}, create=True)
    resp = render(request, "chat.html")
    set_session_cookie(resp, request, who)
    return resp


class WebChatSender:
    """Delivery to a web chat is storage: an open page hears of it on its event stream
    (``bot.core.fanout``), a page opened later reads it from the transcript."""

    name = CHANNEL
    rate_global = None
    rate_per_chat = None

    def __init__(self, services: Any) -> None:
        self.services = services

    async def send(self, message: OutboxMessage, reply: Reply, locale: str) -> SendResult:
        if message.member_id is not None:
            # best effort: the row is marked sent after this, and a page that misses the
            # event reads it by id (backlog on reconnect, /updates, history)
            event = {"id": message.id, **reply_json(in_script([reply], locale)[0])}
            try:
                await self.services.fanout.publish(events_topic(message.member_id), event)
            except Exception:  # Redis away: the page catches up on reconnect
                log.warning("web chat: could not publish outbox row %s", message.id, exc_info=True)
        return SendResult(provider_ref=f"web-{message.id}")


def setup(app: web.Application, settings: Settings) -> None:
    app.router.add_get("/chat", chat_page)
    app.router.add_post("/api/v1/chat", chat_api)
    app.router.add_route("OPTIONS", "/api/v1/chat", preflight)
    app.router.add_get("/api/v1/chat/updates", chat_updates)
    app.router.add_route("OPTIONS", "/api/v1/chat/updates", preflight)
    app.router.add_get("/api/v1/chat/history", chat_history)
    app.router.add_route("OPTIONS", "/api/v1/chat/history", preflight)
    app.router.add_get("/api/v1/chat/events", chat_events)
    app[STREAM_LIMITS] = StreamLimits(settings.webchat_events_per_member, settings.webchat_events_per_ip)
    sse.install(app)

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        app[SERVICES].channels.register(WebChatSender(app[SERVICES]))
        yield

    app.cleanup_ctx.append(ctx)
