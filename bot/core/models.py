"""Core records: members, their channel accounts, the transcript and the outbox."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model


class Member(Model):
    """A customer, whichever channels they use."""

    id = fields.IntField(primary_key=True)
    display_name = fields.CharField(max_length=128, default="")  # the channel profile's name
    nickname = fields.CharField(max_length=32, default="", db_default="")  # chosen with "改名 X" / "name X"
    locale = fields.CharField(max_length=8, default="zh_CN")
    locale_explicit = fields.BooleanField(default=False)  # chosen with the language command
    tags: fields.JSONField[list[str]] = fields.JSONField(default=list)  # e.g. ["vip", "tenure:5y", "plan:5g-128"]
    status = fields.CharField(max_length=16, default="active")  # active | suspended
    is_staff = fields.BooleanField(default=False)
    opted_out = fields.BooleanField(default=False)  # no unsolicited messages on any channel
    # the member's own phone number (E.164), proven by a one-time code sent to it; redemption
    # needs it and phone credit goes only there
    phone = fields.CharField(max_length=32, null=True, unique=True)
    phone_verified_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_seen_at = fields.DatetimeField(null=True)

    class Meta:
        table = "member"


class ChannelAccount(Model):
    """One identity of a member on one channel (WeChat openid, Telegram id, phone, web id)."""

    id = fields.IntField(primary_key=True)
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="accounts", on_delete=fields.CASCADE
    )
    member_id: int
    channel = fields.CharField(max_length=16)
    external_id = fields.CharField(max_length=128)
    chat_id = fields.CharField(max_length=128, default="")
    active = fields.BooleanField(default=True)  # false: unsubscribed / blocked the bot
    inactive_reason = fields.CharField(max_length=64, default="")
    created_at = fields.DatetimeField(auto_now_add=True)
    last_inbound_at = fields.DatetimeField(null=True)

    class Meta:
        table = "channel_account"
        unique_together = (("channel", "external_id"),)


class TranscriptEntry(Model):
    """Every message in and out, per member and channel: what an agent reads."""

    id = fields.BigIntField(primary_key=True)
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="transcript", on_delete=fields.CASCADE
    )
    member_id: int
    channel = fields.CharField(max_length=16)
    direction = fields.CharField(max_length=3)  # in | out
    text = fields.TextField(default="")
    action = fields.CharField(max_length=128, default="")
    # inbound only: the channel's message id. Unique per channel, so a retry that slips
    # past the dedup store (restart, expiry) still cannot be processed twice.
    msg_id = fields.CharField(max_length=128, null=True)
    kind = fields.CharField(max_length=32, default="")  # answer, suggest, none, command, agent, ...
    item_id = fields.IntField(null=True)
    confidence = fields.FloatField(null=True)
    payload: fields.JSONField[dict[str, Any] | None] = fields.JSONField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "transcript_entry"
        unique_together = (("channel", "msg_id"),)
        indexes = (("member_id", "created_at"),)


class UnansweredQuestion(Model):
    """A question the knowledge base could not answer: the 'knowledge wanted' list."""

    id = fields.IntField(primary_key=True)
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="unanswered", on_delete=fields.CASCADE
    )
    member_id: int
    channel = fields.CharField(max_length=16)
    text = fields.TextField()
    normalized = fields.TextField(default="")
    best_item_id = fields.IntField(null=True)
    best_score = fields.FloatField(default=0.0)
    resolved = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "unanswered_question"


class AnswerFeedback(Model):
    """A member's 👍/👎 on one answer they were shown."""

    id = fields.IntField(primary_key=True)
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="feedback", on_delete=fields.CASCADE
    )
    member_id: int
    transcript: fields.ForeignKeyNullableRelation[TranscriptEntry] = fields.ForeignKeyField(
        "models.TranscriptEntry", related_name="feedback", null=True, on_delete=fields.SET_NULL
    )
    transcript_id: int | None
    item_id = fields.IntField(db_index=True)
    helpful = fields.BooleanField()
    query = fields.TextField(default="")
    confidence = fields.FloatField(null=True)
    channel = fields.CharField(max_length=16, default="")
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "answer_feedback"
        unique_together = (("member", "transcript"),)


class OutboxMessage(Model):
    """A message stored before it is sent, then sent, retried or dead-lettered by the outbox."""

    id = fields.BigIntField(primary_key=True)
    channel = fields.CharField(max_length=16, db_index=True)
    address = fields.CharField(max_length=128)
    member: fields.ForeignKeyNullableRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="outbox", null=True, on_delete=fields.SET_NULL
    )
    member_id: int | None
    payload: fields.JSONField[dict[str, Any]] = fields.JSONField()  # Reply.to_dict()
    purpose = fields.CharField(max_length=16, default="reply")
    idempotency_key = fields.CharField(max_length=191, null=True, unique=True)
    status = fields.CharField(max_length=16, default="queued", db_index=True)
    # queued | sending | sent | failed (retrying) | dead | held (cannot send now, e.g. window)
    attempts = fields.IntField(default=0)
    next_attempt_at = fields.DatetimeField(null=True, db_index=True)
    # the current claim's fencing token: a worker whose lease passed to another changes nothing
    claim_token = fields.CharField(max_length=32, null=True)
    last_error = fields.TextField(default="")
    provider_ref = fields.CharField(max_length=128, default="")  # provider message id
    delivery_status = fields.CharField(max_length=32, default="")  # from delivery receipts
    segments = fields.IntField(null=True)  # SMS segment count
    created_at = fields.DatetimeField(auto_now_add=True)
    sent_at = fields.DatetimeField(null=True)

    class Meta:
        table = "outbox_message"
