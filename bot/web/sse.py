"""Server-sent event streams over ``bot.core.fanout`` (the agent inbox, the member's web chat).

One writer for every stream: subscribe first, then send what the caller had missed (the
backlog, read after subscribing so nothing falls between the two), then the live events,
with a keep-alive comment while nothing happens. Events with an ``id`` are sent once: a
backlog row that is also published live is not repeated, and the browser's
``Last-Event-ID`` resumes after it. Every stream ends when the app shuts down.

``serve_ordered`` is the stricter form for streams whose rows must arrive in id order
(the member's web chat): live events only wake it up, and it reads the rows themselves,
in order, from an :class:`OrderedSource`."""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Protocol

from aiohttp import web

from bot.core.fanout import Subscription

KEEPALIVE = 15.0
POLL = 1.0  # how often a quiet stream looks at the shutdown flag
SSE_STOP: web.AppKey[asyncio.Event] = web.AppKey("sse_stop", asyncio.Event)

Backlog = Callable[[], Awaitable[list[dict[str, Any]]]]


def install(app: web.Application) -> None:
    """Give ``app`` the shutdown flag its streams watch (once, whoever asks first)."""
    if SSE_STOP in app:
        return
    app[SSE_STOP] = asyncio.Event()

    async def stop_streams(app: web.Application) -> None:
        app[SSE_STOP].set()

    app.on_shutdown.append(stop_streams)


def _frame(item: dict[str, Any], event_id: int | None) -> bytes:
    head = f"id: {event_id}\n" if event_id is not None else ""
    return f"{head}data: {json.dumps(item, ensure_ascii=False)}\n\n".encode()


async def _open(request: web.Request) -> tuple[web.StreamResponse, asyncio.Event]:
    """The prepared event-stream response, and the app's shutdown flag it must watch."""
    install(request.app)
    resp = web.StreamResponse(
        headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
    )
    await resp.prepare(request)
    return resp, request.app[SSE_STOP]


class _KeepAlive:
    """A comment after ``every`` quiet seconds, so proxies do not cut an idle stream."""

    def __init__(self, resp: web.StreamResponse, every: float) -> None:
        self.resp, self.every, self.quiet = resp, every, 0.0

    async def idle(self, seconds: float) -> None:
        self.quiet += seconds
        if self.quiet >= self.every:
            self.quiet = 0.0
            await self.resp.write(b": keep-alive\n\n")

    def heard(self) -> None:
        self.quiet = 0.0


def last_event_id(request: web.Request, query_key: str = "after") -> int:
    """Where a reconnecting stream resumes: the browser's ``Last-Event-ID`` or ``?after=``;
    0 for anything that is not a non-negative integer."""
    for raw in (request.headers.get("Last-Event-ID"), request.query.get(query_key)):
        if raw and raw.isascii() and raw.isdigit():
            return int(raw)
    return 0


async def serve(
    request: web.Request,
    subscription: Subscription,
    *,
    backlog: Backlog | None = None,
    with_ids: bool = False,
    after: int = 0,
    keepalive: float = KEEPALIVE,
) -> web.StreamResponse:
    """Stream ``subscription``'s events to the client until it leaves or the app stops.

    ``with_ids``: events carry an integer ``id``; only ids above ``after`` (and above every
    id already sent) go out."""
    resp, stop = await _open(request)
    sent = after

    async def emit(item: dict[str, Any]) -> None:
        nonlocal sent
        if with_ids:
            event_id = item.get("id")
            if not isinstance(event_id, int) or event_id <= sent:
                return
            sent = event_id
            await resp.write(_frame(item, event_id))
        else:
            await resp.write(_frame(item, None))

    item: dict[str, Any] | None  # a backlog entry, then the subscription's (None: timed out)
    try:
        async with subscription as sub:
            await resp.write(b"retry: 3000\n: connected\n\n")
            if backlog is not None:
                for item in await backlog():
                    await emit(item)
            alive = _KeepAlive(resp, keepalive)
            while not stop.is_set():
                item = await sub.get(timeout=POLL)
                if item is None:
                    await alive.idle(POLL)
                    continue
                alive.heard()
                await emit(item)
    except ConnectionResetError:  # the page went away
        pass
    return resp


@dataclass(frozen=True)
class Ready:
    """What an ordered source can send now: ``items`` (ascending integer ``id``), whether
    more rows are ready past them (``more``: ask again at once), and when to look again
    (``retry_in`` seconds) for rows held back by the ordering rule."""

    items: list[dict[str, Any]]
    more: bool = False
    retry_in: float | None = None


class OrderedSource(Protocol):
    """Rows a stream sends strictly in id order, read from the database, not from the live
    events (those only say "look again"): a late, lower id is never skipped."""

    async def ready(self, after: int, limit: int) -> Ready: ...


PAGE_ROWS = 200


async def serve_ordered(
    request: web.Request,
    subscription: Subscription,
    source: OrderedSource,
    *,
    after: int = 0,
    max_rows: int = 2000,
    page: int = PAGE_ROWS,
    keepalive: float = KEEPALIVE,
) -> web.StreamResponse:
    """Stream ``source``'s rows after id ``after`` in id order, woken by ``subscription``.

    Catching up reads pages of ``page`` rows until caught up; after ``max_rows`` rows the
    stream ends and the browser resumes by ``Last-Event-ID`` (so one request never reads
    an unbounded backlog). Each frame's ``id`` is the row's, and ids only grow."""
    resp, stop = await _open(request)
    loop = asyncio.get_running_loop()
    cursor, sent = after, 0
    look_at: float | None = loop.time()  # when to read the source again (None: on an event)
    try:
        async with subscription as sub:
            await resp.write(b"retry: 3000\n: connected\n\n")
            alive = _KeepAlive(resp, keepalive)
            while not stop.is_set():
                if look_at is not None and loop.time() >= look_at:
                    look_at = None
                    while sent < max_rows:
                        batch = await source.ready(cursor, min(page, max_rows - sent))
                        for item in batch.items:
                            event_id = item["id"]
                            if event_id <= cursor:
                                continue
                            cursor = event_id
                            sent += 1
                            await resp.write(_frame(item, event_id))
                        if batch.retry_in is not None:
                            look_at = loop.time() + batch.retry_in
                        if not batch.more or not batch.items:
                            break
                    if sent >= max_rows:
                        break  # bounded: the browser reconnects and goes on from its Last-Event-ID
                timeout = POLL if look_at is None else max(0.0, min(POLL, look_at - loop.time()))
                if timeout <= 0:
                    continue  # held-back rows are due: read the source again
                if await sub.get(timeout=timeout) is None:
                    await alive.idle(timeout)
                    continue
                alive.heard()
                look_at = loop.time()  # something was published: read the source again
    except ConnectionResetError:  # the page went away
        pass
    return resp
