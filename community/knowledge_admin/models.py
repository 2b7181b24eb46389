"""Records of the knowledge lifecycle (the items themselves are community.models.KnowledgeItem)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from bot.core.models import Member
    from community.models import KnowledgeItem

# A revision's state: a draft is being written; pending waits for a reviewer;
# published is the live text, superseded was; rejected was turned down; retired took the item out.
VERSION_STATES = ("draft", "pending", "published", "superseded", "rejected", "retired")


class KnowledgeVersion(Model):
    """One snapshot of an item's fields, who wrote it, when and why, and the review outcome."""

    id = fields.IntField(primary_key=True)
    item: fields.ForeignKeyRelation[KnowledgeItem] = fields.ForeignKeyField(
        "models.KnowledgeItem", related_name="versions", on_delete=fields.CASCADE
    )
    item_id: int
    number = fields.IntField()
    data: fields.JSONField[dict[str, Any]] = fields.JSONField()
    state = fields.CharField(max_length=16, db_index=True)
    author = fields.CharField(max_length=96)  # "staff:<username>" or "member:<id>"
    reason = fields.TextField(default="")  # the author's note
    decided_by = fields.CharField(max_length=96, default="")
    decision_reason = fields.TextField(default="")
    contribution_id = fields.IntField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    decided_at = fields.DatetimeField(null=True)

    class Meta:
        table = "knowledge_version"
        unique_together = (("item", "number"),)


class KnowledgeContribution(Model):
    """A member's proposal ("我来补充"): a new item, or an edit of an existing one."""

    id = fields.IntField(primary_key=True)
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="kb_contributions", on_delete=fields.CASCADE
    )
    member_id: int
    channel = fields.CharField(max_length=16, default="")
    item_id = fields.IntField(null=True)  # the item it creates or edits
    text = fields.TextField()
    status = fields.CharField(max_length=16, default="pending", db_index=True)  # pending/approved/rejected
    reason = fields.TextField(default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    decided_at = fields.DatetimeField(null=True)

    class Meta:
        table = "knowledge_contribution"


class CandidateVariant(Model):
    """A question phrasing that use suggests for an item (a "did you mean" pick, a better
    pick after 👎, an agent's ticket resolved with the item), waiting for a reviewer or
    for enough agreeing members."""

    id = fields.IntField(primary_key=True)
    item_id = fields.IntField(db_index=True)
    text = fields.CharField(max_length=500)  # as asked
    normalized = fields.CharField(max_length=500)
    sources: fields.JSONField[list[str]] = fields.JSONField(default=list)  # pick / better_pick / ticket
    members: fields.JSONField[list[int]] = fields.JSONField(default=list)  # distinct member ids that agreed
    status = fields.CharField(max_length=16, default="candidate", db_index=True)  # candidate/accepted/rejected
    decided_by = fields.CharField(max_length=96, default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "knowledge_candidate_variant"
        unique_together = (("item_id", "normalized"),)
