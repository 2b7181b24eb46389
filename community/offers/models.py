"""Offers and the record of every impression, click and acceptance."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from bot.core.models import Member

EVENT_KINDS = ("impression", "click", "accept")


class Offer(Model):
    """One marketing rule: what to show, to whom, when, and how often."""

    id = fields.IntField(primary_key=True)
    title = fields.CharField(max_length=120)
    # a jinja2 template (sandboxed, autoescaped) with member fields: {{ member.name }} ...
    body = fields.TextField(default="")
    url = fields.CharField(max_length=500, default="")  # http(s) link the tracked redirect goes to
    action_label = fields.CharField(max_length=64, default="")  # a chat button, e.g. 开通流量叠加包
    # triggers: empty list = any
    trigger_items: fields.JSONField[list[int]] = fields.JSONField(default=list)  # knowledge item ids answered
    trigger_categories: fields.JSONField[list[str]] = fields.JSONField(default=list)  # knowledge categories answered
    trigger_keywords: fields.JSONField[list[str]] = fields.JSONField(default=list)  # words in the member's question
    trigger_tags: fields.JSONField[list[str]] = fields.JSONField(default=list)  # member tags; "plan:*" matches any plan
    channels: fields.JSONField[list[str]] = fields.JSONField(default=list)
    locales: fields.JSONField[list[str]] = fields.JSONField(default=list)
    starts_at = fields.DatetimeField(null=True)
    ends_at = fields.DatetimeField(null=True)
    daily_budget = fields.IntField(default=0)  # impressions per local day; 0 = unlimited
    repeat_days = fields.IntField(default=7)  # the same offer at most once per this many days
    priority = fields.IntField(default=0)  # higher wins among eligible offers
    active = fields.BooleanField(default=True)
    created_by = fields.CharField(max_length=64, default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "offer"


class OfferEvent(Model):
    """One impression, click or acceptance. ``token`` ties the three together: it is
    the impression's id in the tracked link, and (token, kind) is unique so a retried
    click or acceptance is counted once."""

    id = fields.BigIntField(primary_key=True)
    offer: fields.ForeignKeyRelation[Offer] = fields.ForeignKeyField(
        "models.Offer", related_name="events", on_delete=fields.CASCADE
    )
    offer_id: int
    kind = fields.CharField(max_length=12)  # impression | click | accept
    token = fields.CharField(max_length=32, db_index=True)
    member: fields.ForeignKeyNullableRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="offer_events", null=True, on_delete=fields.SET_NULL
    )
    member_id: int | None
    channel = fields.CharField(max_length=16, default="")
    item_id = fields.IntField(null=True)
    category = fields.CharField(max_length=32, default="")
    tags: fields.JSONField[list[str]] = fields.JSONField(default=list)  # the member's tags at the time
    tags_text = fields.CharField(max_length=500, default="")  # "|vip|plan:5g|" for searching
    query = fields.CharField(max_length=200, default="")
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "offer_event"
        unique_together = (("token", "kind"),)
