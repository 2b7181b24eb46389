"""Per-part records of SMPP submissions, so a delivery receipt for any part finds its message."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from bot.core.models import OutboxMessage


class SmsPart(Model):
    """One submitted part (submit_sm) of an outbox message and its delivery receipt."""

    id = fields.BigIntField(primary_key=True)
    outbox: fields.ForeignKeyRelation[OutboxMessage] = fields.ForeignKeyField(
        "models.OutboxMessage", related_name="sms_parts", on_delete=fields.CASCADE
    )
    outbox_id: int
    provider = fields.CharField(max_length=16, default="smpp")
    message_id = fields.CharField(max_length=96, db_index=True)  # SMSC message_id
    part = fields.IntField(default=1)
    total = fields.IntField(default=1)
    delivery_status = fields.CharField(max_length=32, default="")
    error = fields.CharField(max_length=255, default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "sms_part"
