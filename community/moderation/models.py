"""Watched words, held/flagged content awaiting review, warnings and the audit log."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from bot.core.models import Member

KINDS = ("word", "wildcard", "regex")
ACTIONS = ("block", "hold", "replace", "flag", "warn")


class WatchedWord(Model):
    id = fields.IntField(primary_key=True)
    pattern = fields.CharField(max_length=200)
    kind = fields.CharField(max_length=16, default="word")  # word | wildcard | regex
    action = fields.CharField(max_length=16, default="flag")  # see ACTIONS
    replacement = fields.CharField(max_length=64, default="***")
    note = fields.CharField(max_length=255, default="")
    active = fields.BooleanField(default=True)
    created_by = fields.CharField(max_length=64, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "moderation_watched_word"


class ReviewItem(Model):
    """Held or flagged content, a reviewer approves or rejects it with a reason."""

    id = fields.IntField(primary_key=True)
    content_type = fields.CharField(max_length=16)  # question | answer | contribution | forward
    content_id = fields.IntField(null=True)
    member: fields.ForeignKeyNullableRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="review_items", null=True, on_delete=fields.SET_NULL
    )
    member_id: int | None
    text = fields.TextField()
    action = fields.CharField(max_length=16)  # hold | flag
    matched: fields.JSONField[list[dict[str, Any]]] = fields.JSONField(default=list)
    status = fields.CharField(max_length=16, default="pending", db_index=True)  # pending | approved | rejected
    reason = fields.CharField(max_length=500, default="")
    reviewer = fields.CharField(max_length=64, default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    decided_at = fields.DatetimeField(null=True)

    class Meta:
        table = "moderation_review_item"


class MemberStanding(Model):
    """Caring warnings a member received, forwarding points freeze after repeated ones."""

    id = fields.IntField(primary_key=True)
    member: fields.OneToOneRelation[Member] = fields.OneToOneField(
        "models.Member", related_name="standing", on_delete=fields.CASCADE
    )
    member_id: int
    warnings = fields.IntField(default=0)
    forwarding_frozen = fields.BooleanField(default=False)
    frozen_at = fields.DatetimeField(null=True)
    # the last warning plus the clean period: a freeze lifts once this passes with no new warning
    clean_until = fields.DatetimeField(null=True)
    # bumped each time a freeze lifts: warnings after it are a new episode (a new review flag)
    episode = fields.IntField(default=0)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "moderation_member_standing"


class ModerationAudit(Model):
    """Every moderation action, by the system or by a reviewer."""

    id = fields.BigIntField(primary_key=True)
    actor = fields.CharField(max_length=64)  # "system" or "staff:<username>"
    action = fields.CharField(max_length=32)
    content_type = fields.CharField(max_length=16, default="")
    content_id = fields.IntField(null=True)
    member_id = fields.IntField(null=True, db_index=True)
    detail: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "moderation_audit"
