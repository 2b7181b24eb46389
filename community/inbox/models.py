"""Tickets and the messages on them."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

from bot.core.i18n import N_

if TYPE_CHECKING:
    from bot.core.models import Member
    from bot.staff.models import StaffUser

REASONS = ("unanswered", "unsatisfied", "complaint", "human", "deadline")
STATUSES = ("open", "claimed", "closed")


class Ticket(Model):
    merge_member_columns = ("open_key",)  # a member merge re-keys (or frees) the live ticket

    id = fields.IntField(primary_key=True)
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="tickets", on_delete=fields.CASCADE
    )
    member_id: int
    channel = fields.CharField(max_length=16)
    reason = fields.CharField(max_length=16)
    summary = fields.TextField(default="")
    status = fields.CharField(max_length=16, default="open", db_index=True)
    # the member id while the ticket is not closed: one live ticket per member, even under races
    open_key = fields.IntField(null=True, unique=True)
    urgent = fields.BooleanField(default=False)
    urgent_why: fields.JSONField[list[str]] = fields.JSONField(default=list)  # complaint, vip, repeat
    assignee: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="tickets", null=True, on_delete=fields.SET_NULL
    )
    assignee_id: int | None
    question_id = fields.IntField(null=True)
    unanswered_id = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    claimed_at = fields.DatetimeField(null=True)
    first_response_due = fields.DatetimeField()
    resolution_due = fields.DatetimeField()
    first_response_at = fields.DatetimeField(null=True)
    closed_at = fields.DatetimeField(null=True)
    survey_sent_at = fields.DatetimeField(null=True)
    survey_score = fields.IntField(null=True)
    survey_at = fields.DatetimeField(null=True)
    survey_comment = fields.TextField(null=True)  # optional words after the score

    class Meta:
        table = "inbox_ticket"


class TicketMessage(Model):
    """What happened on a ticket: member messages, agent replies, system notes."""

    id = fields.BigIntField(primary_key=True)
    ticket: fields.ForeignKeyRelation[Ticket] = fields.ForeignKeyField(
        "models.Ticket", related_name="messages", on_delete=fields.CASCADE
    )
    ticket_id: int
    author = fields.CharField(max_length=8)  # member | agent | system
    staff: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="ticket_messages", null=True, on_delete=fields.SET_NULL
    )
    staff_id: int | None
    text = fields.TextField()
    channel = fields.CharField(max_length=16, default="")
    # agent replies: the form's one-time nonce, so a double submit sends once
    nonce = fields.CharField(max_length=64, null=True, unique=True)
    outbox_id = fields.BigIntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "inbox_ticket_message"


# labels shown in the inbox, marked for translation
LABELS = (
    N_("unanswered"),
    N_("unsatisfied"),
    N_("complaint"),
    N_("human"),
    N_("deadline"),
    N_("open"),
    N_("claimed"),
    N_("closed"),
    N_("vip"),
    N_("repeat"),
    N_("visible"),
    N_("held"),
    N_("rejected"),
    N_("pending"),
    N_("approved"),
)
