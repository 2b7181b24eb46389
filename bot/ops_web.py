"""Operations wiring: live-update fan-out, dead letters for staff, clear 503s on outages.

- ``services.fanout``: :mod:`bot.core.fanout` over Redis when configured, else in-process.
- ``GET /api/v1/admin/outbox?status=dead``: the outbox rows staff must look at (agents
  and admins), ``POST /api/v1/admin/outbox/{id}/retry``: send a dead/held row again (admins).
- A Redis or database outage during a request answers 503 with ``Retry-After`` (channel
  providers retry; the dedup claim was released), never a 500 with a traceback.
"""

from __future__ import annotations

import asyncio

import logging
from collections.abc import AsyncIterator, Awaitable, Callable

from aiohttp import web
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import TimeoutError as RedisTimeoutError
from tortoise.exceptions import DBConnectionError
from tortoise.expressions import Q
from tortoise.functions import Count

from bot.core.app_keys import SERVICES
from bot.core.fanout import make_fanout
from bot.core.models import OutboxMessage
from bot.core.clock import utcnow
from bot.core.settings import Settings
from bot.staff.auth import require_role

log = logging.getLogger(__name__)

STATUSES = ("queued", "sending", "sent", "failed", "dead", "held", "suppressed")
RETRY_AFTER_SECONDS = 5


def _outage_types() -> tuple[type[BaseException], ...]:
    types: list[type[BaseException]] = [
        RedisConnectionError,
        RedisTimeoutError,
        DBConnectionError,
        ConnectionRefusedError,
        ConnectionResetError,
    ]
    try:
        import asyncpg

        types += [
            asyncpg.exceptions.CannotConnectNowError,
            asyncpg.exceptions.ConnectionDoesNotExistError,
            asyncpg.exceptions.AdminShutdownError,
            asyncpg.exceptions.InterfaceError,
        ]
    except ImportError:  # pragma: no cover - asyncpg is a dependency
        pass
    return tuple(types)


OUTAGES = _outage_types()


@web.middleware
async def outage_middleware(
    request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
) -> web.StreamResponse:
    """A backend outage is a temporary condition: say so (503 + Retry-After)."""
    try:
        return await handler(request)
    except OUTAGES as exc:
        log.warning("backend unavailable on %s %s: %s: %s", request.method, request.path, type(exc).__name__, exc)
        headers = {"Retry-After": str(RETRY_AFTER_SECONDS)}
        if request.path.startswith("/api/"):
            return web.json_response(
                {"error": "service temporarily unavailable, please retry shortly"}, status=503, headers=headers
            )
        return web.Response(status=503, text="Service temporarily unavailable, please retry shortly.", headers=headers)


def _row(m: OutboxMessage) -> dict[str, object]:
    payload = m.payload if isinstance(m.payload, dict) else {}
    return {
        "id": m.id,
        "channel": m.channel,
        "address": m.address,
        "member_id": m.member_id,
        "purpose": m.purpose,
        "status": m.status,
        "attempts": m.attempts,
        "last_error": m.last_error,
        "text": str(payload.get("text", ""))[:500],
        "provider_ref": m.provider_ref,
        "created_at": m.created_at.isoformat() if m.created_at else None,
        "next_attempt_at": m.next_attempt_at.isoformat() if m.next_attempt_at else None,
        "sent_at": m.sent_at.isoformat() if m.sent_at else None,
    }


@require_role("agent", "admin")
async def outbox_list(request: web.Request) -> web.Response:
    """Outbox rows by status (default ``dead``), newest first, with per-status counts."""
    status = request.query.get("status", "dead")
    if status not in STATUSES:
        return web.json_response({"error": f"status must be one of {', '.join(STATUSES)}"}, status=400)
    try:
        limit = min(max(int(request.query.get("limit", "50")), 1), 500)
        before = int(request.query["before_id"]) if "before_id" in request.query else None
    except ValueError:
        return web.json_response({"error": "limit and before_id must be integers"}, status=400)
    q = OutboxMessage.filter(status=status)
    if request.query.get("channel"):
        q = q.filter(channel=request.query["channel"][:16])
    if before is not None:
        q = q.filter(id__lt=before)
    rows = await q.order_by("-id").limit(limit)
    counts = await OutboxMessage.all().annotate(n=Count("id")).group_by("status").values_list("status", "n")
    return web.json_response({"status": status, "messages": [_row(m) for m in rows], "counts": dict(counts)})


@require_role("admin")
async def outbox_retry(request: web.Request) -> web.Response:
    """Send a dead or held message again (after fixing its cause), or one stuck in
    ``sending`` past its lease (its process died); counts restart. A row being sent now
    (live lease) is refused with 409: retrying it could send it twice."""
    try:
        msg_id = int(request.match_info["id"])
    except ValueError:
        return web.json_response({"error": "id must be an integer"}, status=400)
    now = utcnow()
    updated = await OutboxMessage.filter(
        Q(status__in=("dead", "held")) | Q(status="sending", next_attempt_at__lt=now), id=msg_id
    ).update(status="queued", attempts=0, next_attempt_at=now, last_error="")
    if not updated:
        if await OutboxMessage.filter(id=msg_id, status="sending").exists():
            return web.json_response({"error": "this message is being sent now; retry after its lease"}, status=409)
        return web.json_response({"error": "no dead, held or stuck message with this id"}, status=404)
    outbox = request.app[SERVICES].outbox
    outbox.wakeup.set()
    for hook in outbox.on_stored:
        await hook(msg_id)
    return web.json_response({"id": msg_id, "status": "queued"})


def setup(app: web.Application, settings: Settings) -> None:
    app.middlewares.append(outage_middleware)
    app.router.add_get("/api/v1/admin/outbox", outbox_list)
    app.router.add_post("/api/v1/admin/outbox/{id}/retry", outbox_retry)

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        services = app[SERVICES]
        fanout = services.fanout = make_fanout(services.redis)
        # knowledge edits made on one worker reach every worker's index
        follow = asyncio.create_task(services.kb.follow(fanout))
        # ... and changes made elsewhere (kb import, another process) within kb_refresh_seconds
        watch = asyncio.create_task(services.kb.watch(settings.kb_refresh_seconds))
        try:
            yield
        finally:
            follow.cancel()
            watch.cancel()
            await asyncio.gather(follow, watch, return_exceptions=True)
            await fanout.close()

    app.cleanup_ctx.append(ctx)
