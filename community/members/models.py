"""Member tags as rows (so the inbox can filter by tag in SQL) and their audit trail."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from bot.core.models import Member


class MemberTag(Model):
    """One tag on one member. ``Member.tags`` is kept equal to these rows by
    ``community.members.tags`` (offers and the ticket priority read the list)."""

    id = fields.IntField(primary_key=True)
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="tag_rows", on_delete=fields.CASCADE
    )
    member_id: int
    tag = fields.CharField(max_length=64)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "member_tag"
        unique_together = (("member", "tag"),)
        indexes = (("tag", "member_id"),)


class MemberTagChange(Model):
    """Who added or removed which tag on which member, from where (inbox, api, cli)."""

    id = fields.BigIntField(primary_key=True)
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="tag_changes", on_delete=fields.CASCADE
    )
    member_id: int
    tag = fields.CharField(max_length=64)
    op = fields.CharField(max_length=8)  # add | remove
    actor = fields.CharField(max_length=128)  # "staff:<username>" or "cli:<os user>"
    source = fields.CharField(max_length=16)  # inbox | api | cli
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "member_tag_change"
