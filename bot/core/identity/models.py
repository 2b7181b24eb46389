"""Records of the identity layer: one-time link codes and the audit of every member merge."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from bot.core.models import Member


class LinkCode(Model):
    """A one-time code: ``phone`` (sent by SMS to prove a number) or ``bind`` (shown on one
    channel, typed on another). Only a keyed hash of the code is stored."""

    merge_skip = True  # belongs to the account that asked; never moved by a merge

    id = fields.IntField(primary_key=True)
    kind = fields.CharField(max_length=8)  # phone | bind
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="link_codes", on_delete=fields.CASCADE
    )
    member_id: int
    account_id = fields.IntField()  # the channel account that asked
    phone = fields.CharField(max_length=32, null=True, db_index=True)
    code_hash = fields.CharField(max_length=64, db_index=True)
    attempts = fields.IntField(default=0)  # wrong codes typed against it
    expires_at = fields.DatetimeField()
    used_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "identity_link_code"


class MemberMerge(Model):
    """``source`` merged into ``target``: what moved, so that an unmerge can put it back.

    ``active_key`` is the source's id while the merge stands (unique: a member is merged
    away once; a retried or concurrent merge finds this row), NULL once undone."""

    merge_skip = True  # the audit itself stays as written

    id = fields.IntField(primary_key=True)
    source: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="merged_away", on_delete=fields.CASCADE
    )
    source_id: int
    target: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="merged_in", on_delete=fields.CASCADE
    )
    target_id: int
    active_key = fields.IntField(null=True, unique=True)
    via = fields.CharField(max_length=16)  # phone | bind | staff
    actor = fields.CharField(max_length=64, default="")  # member:<id> | staff:<username>
    moved: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)  # {model: {field: [pk, ...]}}
    # rows left on the source (would break a unique rule)
    kept: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    # {model: {column: {pk: old value}}} member-id columns
    columns: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    members: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)  # both members' fields before the merge
    # what each domain hook did (the ledger transfer)
    hooks: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    status = fields.CharField(max_length=16, default="merged")  # merged | unmerged
    created_at = fields.DatetimeField(auto_now_add=True)
    undone_at = fields.DatetimeField(null=True)
    undone_by = fields.CharField(max_length=64, default="")

    class Meta:
        table = "identity_member_merge"
