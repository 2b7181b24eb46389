"""The review queue's rows: one ``Reviewable`` per thing waiting for staff, and its audit."""

from __future__ import annotations

from enum import StrEnum
from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

from bot.core.i18n import N_

if TYPE_CHECKING:
    from bot.core.models import Member
    from bot.staff.models import StaffUser


class Kind(StrEnum):
    """What a reviewable points at; each kind's logic lives in its own package."""

    MODERATION_ITEM = "moderation_item"  # community.moderation ReviewItem (held/flagged content)
    MODERATION_FLAG = "moderation_flag"  # gamification ReviewFlag (a member held for review)
    CONTRIBUTION = "contribution"  # community.knowledge_admin KnowledgeContribution
    CANDIDATE_VARIANT = "candidate_variant"  # community.knowledge_admin CandidateVariant
    REDEMPTION = "redemption"  # gamification Redemption in the manual queue


class Status(StrEnum):
    PENDING = "pending"
    APPROVED = "approved"
    REJECTED = "rejected"
    IGNORED = "ignored"  # settled outside the queue (another page, the provider, auto-accept)


# the model each kind's target_id refers to (the data migration uses these names too)
TARGET_TYPES: dict[Kind, str] = {
    Kind.MODERATION_ITEM: "ReviewItem",
    Kind.MODERATION_FLAG: "ReviewFlag",
    Kind.CONTRIBUTION: "KnowledgeContribution",
    Kind.CANDIDATE_VARIANT: "CandidateVariant",
    Kind.REDEMPTION: "Redemption",
}

KIND_LABELS: dict[Kind, str] = {
    Kind.MODERATION_ITEM: N_("Held or flagged content"),
    Kind.MODERATION_FLAG: N_("Member flagged for points review"),
    Kind.CONTRIBUTION: N_("Member contribution"),
    Kind.CANDIDATE_VARIANT: N_("Learned question phrasing"),
    Kind.REDEMPTION: N_("Reward order to fulfil by hand"),
}

STATUS_LABELS: dict[Status, str] = {
    Status.PENDING: N_("Pending review"),
    Status.APPROVED: N_("Approved"),
    Status.REJECTED: N_("Rejected"),
    Status.IGNORED: N_("Settled elsewhere"),
}


def pending_key(kind: Kind | str, target_id: int) -> str:
    """Set while pending and cleared on decision: its unique index makes one open review
    per target, whoever opens it concurrently."""
    return f"{Kind(kind).value}:{target_id}"


class Reviewable(Model):
    """Something waiting for a staff decision, whatever its kind (Discourse's Reviewable)."""

    id = fields.IntField(primary_key=True)
    kind = fields.CharEnumField(Kind, max_length=24, db_index=True)
    target_type = fields.CharField(max_length=32)
    target_id = fields.IntField()
    status = fields.CharEnumField(Status, max_length=16, default=Status.PENDING, db_index=True)
    reason = fields.CharField(max_length=255, default="")  # why it needs review
    summary = fields.CharField(max_length=500, default="")  # what the list shows
    created_by: fields.ForeignKeyNullableRelation["Member"] = fields.ForeignKeyField(
        "models.Member", related_name="reviewables", null=True, on_delete=fields.SET_NULL
    )
    created_by_id: int | None
    reviewed_by: fields.ForeignKeyNullableRelation["StaffUser"] = fields.ForeignKeyField(
        "models.StaffUser", related_name="reviewables", null=True, on_delete=fields.SET_NULL
    )
    reviewed_by_id: int | None
    reviewed_at = fields.DatetimeField(null=True)
    pending_key = fields.CharField(max_length=64, null=True, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "review_reviewable"
        indexes = (("target_type", "target_id"),)


class ReviewableAction(Model):
    """The audit of a reviewable: opened, approved, rejected or settled elsewhere, by whom."""

    id = fields.BigIntField(primary_key=True)
    reviewable: fields.ForeignKeyRelation[Reviewable] = fields.ForeignKeyField(
        "models.Reviewable", related_name="actions", on_delete=fields.CASCADE
    )
    reviewable_id: int
    action = fields.CharField(max_length=16)  # open | approve | reject | ignore
    actor = fields.CharField(max_length=96)  # "staff:<username>" or "system"
    staff: fields.ForeignKeyNullableRelation["StaffUser"] = fields.ForeignKeyField(
        "models.StaffUser", related_name="review_actions", null=True, on_delete=fields.SET_NULL
    )
    staff_id: int | None
    note = fields.TextField(default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "review_action"
