"""Consent to unsolicited messages: opt-out / opt-in, stored on the member and audited.

``Member.opted_out`` is what every sender honours (the outbox suppresses unsolicited
purposes for opted-out members); :class:`OptOutEvent` records who changed it, when,
on which channel and with what words.
"""

from __future__ import annotations

from typing import Literal

from tortoise import fields
from tortoise.models import Model
from tortoise.transactions import in_transaction

from bot.core.models import Member

Action = Literal["opt_out", "opt_in"]


class OptOutEvent(Model):
    """One consent change, kept for audit (never updated or deleted by the service)."""

    id = fields.BigIntField(primary_key=True)
    member = fields.ForeignKeyField("models.Member", related_name="consent_events", on_delete=fields.CASCADE)
    channel = fields.CharField(max_length=16)
    action = fields.CharField(max_length=8)  # opt_out | opt_in
    source_text = fields.CharField(max_length=255, default="")
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "opt_out_event"


async def set_consent(member_id: int, action: Action, *, channel: str, source_text: str = "") -> bool:
    """Apply an opt-out/opt-in; returns whether the member's state changed.

    The flag and its audit row are written in one transaction; a repeated keyword is
    still audited (the member asked again) but changes nothing.
    """
    if action not in ("opt_out", "opt_in"):
        raise ValueError(f"unknown consent action {action!r}")
    opted_out = action == "opt_out"
    async with in_transaction():
        changed = await Member.filter(id=member_id, opted_out=not opted_out).update(opted_out=opted_out)
        await OptOutEvent.create(
            member_id=member_id, channel=channel[:16], action=action, source_text=source_text[:255]
        )
    return bool(changed)


async def opt_out(member_id: int, *, channel: str, source_text: str = "") -> bool:
    return await set_consent(member_id, "opt_out", channel=channel, source_text=source_text)


async def opt_in(member_id: int, *, channel: str, source_text: str = "") -> bool:
    return await set_consent(member_id, "opt_in", channel=channel, source_text=source_text)


async def is_opted_out(member_id: int) -> bool:
    return bool(await Member.filter(id=member_id, opted_out=True).exists())
