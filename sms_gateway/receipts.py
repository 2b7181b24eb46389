"""Delivery receipts -> ``OutboxMessage.delivery_status`` (and the reason when it failed)."""

from __future__ import annotations

import asyncio
import logging

from bot.core.models import OutboxMessage
from sms_gateway.models import SmsPart

log = logging.getLogger(__name__)

# later states win; a late "sent" never overwrites "delivered"
RANK = {
    "": 0,
    "scheduled": 0,
    "accepted": 1,
    "queued": 1,
    "sending": 2,
    "sent": 3,
    "enroute": 3,
    "unknown": 4,
    "delivered": 5,
    "undelivered": 5,
    "failed": 5,
    "expired": 5,
    "rejected": 5,
    "deleted": 5,
    "canceled": 5,
    "read": 6,
}
FAILED = {"undelivered", "failed", "expired", "rejected", "deleted", "canceled", "unknown"}


def _later(new: str, old: str) -> bool:
    return RANK.get(new, 4) >= RANK.get(old, 0)


async def _record(msg: OutboxMessage, status: str, error: str) -> bool:
    if not _later(status, msg.delivery_status):
        return False
    updates: dict[str, str] = {"delivery_status": status[:32]}
    if status in FAILED:
        updates["last_error"] = f"delivery failed: {status}{' (' + error + ')' if error else ''}"[:1000]
    await OutboxMessage.filter(id=msg.id).update(**updates)
    return True


async def apply_message_receipt(provider_ref: str, status: str, error: str = "") -> bool:
    """A receipt for a whole message (Twilio's MessageSid). False: unknown or stale."""
    msg = await OutboxMessage.get_or_none(channel="sms", provider_ref=provider_ref)
    if msg is None:
        log.info("delivery receipt for unknown message %s", provider_ref)
        return False
    return await _record(msg, status.lower(), error)


async def apply_part_receipt(message_id: str, status: str, error: str = "", *, wait_seconds: float = 2.0) -> bool:
    """A receipt for one SMPP part; the message's status is the worst of its parts.

    A receipt can outrun our record of the submit it answers (the SMSC may send it right
    after submit_sm_resp), so an unknown id is looked up again for a short while.
    """
    deadline = asyncio.get_running_loop().time() + wait_seconds
    part = await SmsPart.get_or_none(message_id=message_id)
    while part is None and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.05)
        part = await SmsPart.get_or_none(message_id=message_id)
    if part is None:
        log.info("delivery receipt for unknown SMPP message %s", message_id)
        return False
    status = status.lower()
    if _later(status, part.delivery_status):
        await SmsPart.filter(id=part.id).update(delivery_status=status[:32], error=error[:255])
    parts = await SmsPart.filter(outbox_id=part.outbox_id).values_list("delivery_status", "error")
    msg = await OutboxMessage.get(id=part.outbox_id)
    failed = [(s, e) for s, e in parts if s in FAILED]
    if failed:
        return await _record(msg, failed[0][0], failed[0][1])
    if len(parts) >= (part.total or 1) and all(s == "delivered" for s, _ in parts):
        return await _record(msg, "delivered", "")
    states = [s for s, _ in parts] + ["sent"] * max(0, (part.total or 1) - len(parts))
    return await _record(msg, min(states, key=lambda s: RANK.get(s, 4)), "")
