"""The staff audit log: one call per staff action, from whichever page or command did it.

``await audit.record(request, "ticket.reply", "ticket", ticket.id, chars=len(text))`` after
the action succeeded. The actor comes from the server's session (``request["staff"]``), never
from the form; the client address from :func:`bot.web.client.client_ip`. Writing the log
must not undo or fail the action it describes, so a failure here is logged, not raised.
"""

from __future__ import annotations

import logging
from typing import Any

from aiohttp import web

from bot.staff.models import StaffAudit, StaffUser
from bot.web.client import client_ip

log = logging.getLogger(__name__)


async def record(
    request: web.Request | None,
    action: str,
    target_type: str = "",
    target_id: object = "",
    *,
    staff: StaffUser | None = None,
    username: str = "",
    ip: str | None = None,
    **detail: Any,
) -> None:
    """Append one row: who (the session's staff user unless given), did what, to what."""
    actor = staff if staff is not None else (request.get("staff") if request is not None else None)
    try:
        await StaffAudit.create(
            staff_id=actor.id if actor is not None else None,
            username=(actor.username if actor is not None else username)[:64],
            action=action[:48],
            target_type=target_type[:24],
            target_id="" if target_id is None else str(target_id)[:64],
            detail={k: v for k, v in detail.items() if v is not None},
            ip=(ip if ip is not None else client_ip(request) if request is not None else "")[:64],
        )
    except Exception:  # the action happened; losing its log line must not turn it into an error
        log.exception("staff audit %s on %s %s not written", action, target_type, target_id)


async def recent(limit: int = 200, *, target_type: str = "", target_id: object = "") -> list[StaffAudit]:
    """The newest entries, optionally for one target (a ticket's history)."""
    q = StaffAudit.all()
    if target_type:
        q = q.filter(target_type=target_type)
    if target_id not in ("", None):
        q = q.filter(target_id=str(target_id))
    return await q.order_by("-id").limit(limit)
