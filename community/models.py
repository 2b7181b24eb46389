"""Knowledge base records."""

from __future__ import annotations

from tortoise import fields
from tortoise.models import Model

STATUSES = ("draft", "pending", "published", "retired")


class KnowledgeItem(Model):
    """One answer in one locale. Items in several locales share a ``key``."""

    id = fields.IntField(primary_key=True)
    key = fields.CharField(max_length=96)
    locale = fields.CharField(max_length=8, default="zh_CN")
    title = fields.CharField(max_length=255)
    variants: fields.JSONField[list[str]] = fields.JSONField(default=list)
    answer = fields.TextField()
    category = fields.CharField(max_length=32, default="", db_index=True)
    sms_code = fields.CharField(max_length=16, null=True, db_index=True)
    difficulty = fields.IntField(default=1)
    tags: fields.JSONField[list[str]] = fields.JSONField(default=list)
    status = fields.CharField(max_length=16, default="published", db_index=True)
    is_notice = fields.BooleanField(default=False)
    version = fields.IntField(default=1)
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "knowledge_item"
        unique_together = (("key", "locale"),)
        indexes = (("updated_at",),)  # every worker catches up on changes by it
