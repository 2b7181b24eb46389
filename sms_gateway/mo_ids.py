"""A message id for SMPP texts (MO), which carry none of their own.

An SMSC that never saw our deliver_sm_resp (lost on the wire, or the process died after
storing the text) delivers the same text again, with a new sequence number. Without an
id the pipeline would take it for a new message and answer twice. The id is:

- the SMSC's ``receipted_message_id`` when it puts one on an MO;
- otherwise the id given to the same text from the same sender within
  ``sms_mo_redelivery_window_seconds`` (SMSC redelivery comes within seconds), found
  first in the dedup store (concurrent deliveries on several binds) and then in the
  transcript (the store forgot it: a restart); a text repeated after the window is a new
  message, so a member's deliberate repeat a minute later is answered again.
"""

from __future__ import annotations

import hashlib
from datetime import datetime, timedelta, timezone

from bot.core.models import ChannelAccount, TranscriptEntry
from bot.core.inbound import ChannelServices
from sms_gateway.sender import CHANNEL


async def mo_msg_id(services: ChannelServices, user: str, text: str, receipted_id: str | None) -> str:
    """The message id of one inbound SMPP text (see the module docstring)."""
    if receipted_id:
        return f"r{receipted_id}"[:64]
    window = services.settings.sms_mo_redelivery_window_seconds
    digest = hashlib.sha256(f"{user}\0{text}".encode()).hexdigest()[:24]
    key = f"{CHANNEL}:mo:{digest}"
    dedup = services.dedup
    claim = await dedup.claim(key, window, max(1, int(window)))
    if claim.status == "done" and claim.result:
        return claim.result
    if claim.status == "busy":  # the same text is being given an id on another bind right now
        found = await dedup.wait_result(key, 2.0)
        if found:
            return found
    msg_id = await _recent(user, text, window) or f"m{digest[:16]}{claim.token[:8] or 'x'}"
    if claim.status == "owner":
        await dedup.finish(key, claim.token, msg_id, max(1, int(window)))
    return msg_id


async def _recent(user: str, text: str, window: float) -> str | None:
    """The id of the same text from the same sender recorded within the window."""
    member_id = (
        await ChannelAccount.filter(channel=CHANNEL, external_id=user).first().values_list("member_id", flat=True)
    )
    if member_id is None:
        return None
    since = datetime.now(timezone.utc) - timedelta(seconds=window)
    found = (
        await TranscriptEntry.filter(
            member_id=member_id,
            channel=CHANNEL,
            direction="in",
            text=text,
            created_at__gte=since,
        )
        .order_by("-id")
        .first()
        .values_list("msg_id", flat=True)
    )
    return str(found) if found else None
