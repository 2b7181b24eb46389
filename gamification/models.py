"""Gamification records: the append-only points ledger and everything built on it.

The ledger (:class:`LedgerEntry`) is the system of record; :class:`Balance` is a cache
of it, updated in the same transaction as every entry, so
``balance - debt == sum(granted)`` holds for every member at all times.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from bot.core.models import Member


class LedgerEntry(Model):
    """One points event. Never updated or deleted, a correction is a new linked entry."""

    merge_by_hook = "ledger"  # a member merge moves points by new entries (gamification.merge)

    id = fields.BigIntField(primary_key=True)
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="ledger", on_delete=fields.CASCADE
    )
    member_id: int
    event = fields.CharField(max_length=32, db_index=True)  # rules.yaml event name, spend, reversal, ...
    delta = fields.IntField()  # what the rules asked for (negative for spends)
    granted = fields.IntField()  # what actually moved (0 when a cap applied or held)
    held = fields.IntField(default=0)  # withheld: pending (hold_until) and/or for review (ring, farm)
    reason = fields.CharField(max_length=128, default="")
    ref = fields.CharField(max_length=128, default="")  # e.g. answer:12, fwd:3:item:7, redemption:5
    idempotency_key = fields.CharField(max_length=191, unique=True)
    reversal_of: fields.ForeignKeyNullableRelation[LedgerEntry] = fields.ForeignKeyField(
        "models.LedgerEntry", related_name="reversals", null=True, on_delete=fields.RESTRICT
    )
    reversal_of_id: int | None
    counterpart_id = fields.IntField(null=True, db_index=True)  # the other member (recipient, asker)
    item_id = fields.IntField(null=True)  # knowledge item, for per-item caps
    exempt = fields.BooleanField(default=False)  # not counted against the daily cap
    earning = fields.BooleanField(default=False)  # counts on the leaderboards (earnings and their reversals)
    # earned through the action of a not-yet-trusted member: ``held`` is pending until then
    # (gamification.trust); the release job pays it out unless fraud was found meanwhile
    hold_until = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "gam_ledger_entry"
        indexes = (("member_id", "created_at"),)


class Balance(Model):
    """Cached balance per member, changed only inside the ledger's transactions."""

    merge_by_hook = "ledger"

    id = fields.IntField(primary_key=True)
    member: fields.OneToOneRelation[Member] = fields.OneToOneField(
        "models.Member", related_name="points", on_delete=fields.CASCADE
    )
    member_id: int
    balance = fields.IntField(default=0)  # spendable, never negative
    debt = fields.IntField(default=0)  # reversals that found the points already spent
    lifetime = fields.IntField(default=0)  # all positive grants, for the all-time board and badges
    held = fields.IntField(default=0)  # withheld pending review
    last_earned_at = fields.DatetimeField(null=True)  # ties on the boards: earlier achiever first
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "gam_balance"


class ReviewFlag(Model):
    """A member held for review (ring detection, poor credibility), staff resolve it."""

    id = fields.IntField(primary_key=True)
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="review_flags", on_delete=fields.CASCADE
    )
    member_id: int
    reason = fields.CharField(max_length=64)
    detail: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    key = fields.CharField(max_length=191, unique=True)  # one open flag per cause
    status = fields.CharField(max_length=16, default="open", db_index=True)  # open | cleared | confirmed
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "gam_review_flag"


class ForwardLink(Model):
    """A share of one knowledge item by one member on one channel."""

    id = fields.IntField(primary_key=True)
    token = fields.CharField(max_length=32, unique=True)
    sharer: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="forward_links", on_delete=fields.CASCADE
    )
    sharer_id: int
    item_id = fields.IntField(db_index=True)
    channel = fields.CharField(max_length=16)
    target = fields.CharField(max_length=64, default="")  # SMS: the number it was sent to
    creator_fingerprint = fields.CharField(max_length=64, default="")  # sharer's device, if known
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "gam_forward_link"


class ForwardEngagement(Model):
    """A distinct recipient engaging with a forwarded item: at most one per recipient + item."""

    id = fields.IntField(primary_key=True)
    link: fields.ForeignKeyRelation[ForwardLink] = fields.ForeignKeyField(
        "models.ForwardLink", related_name="engagements", on_delete=fields.CASCADE
    )
    link_id: int
    item_id = fields.IntField()
    recipient_key = fields.CharField(max_length=80)  # m:<member id>, or d:<device fingerprint> of a web visitor
    recipient_member_id = fields.IntField(null=True)
    fingerprint = fields.CharField(max_length=64, default="")  # hashed address + agent of a web visitor
    network = fields.CharField(max_length=64, default="")  # hashed network (/24, /64) of a web visitor
    kind = fields.CharField(max_length=16, default="open")  # open | start | sms
    paid = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "gam_forward_engagement"
        unique_together = (("item_id", "recipient_key"),)


class ForwardRating(Model):
    """A recipient's 准确/不准确 verdict on a forwarded item, feeds the sharer's credibility."""

    id = fields.IntField(primary_key=True)
    engagement: fields.OneToOneRelation[ForwardEngagement] = fields.OneToOneField(
        "models.ForwardEngagement", related_name="rating", on_delete=fields.CASCADE
    )
    engagement_id: int
    sharer: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="forward_ratings", on_delete=fields.CASCADE
    )
    sharer_id: int
    item_id = fields.IntField()
    accurate = fields.BooleanField()
    rater_member_id = fields.IntField(null=True)  # None: an anonymous web visitor
    weight = fields.FloatField(default=1.0)  # the rater's trust weight (rules.yaml trust.weights.forward_rating)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "gam_forward_rating"


class SmsForward(Model):
    """One ``ZF`` SMS forward: at most one a day per number from anyone (``slot`` "any"), plus
    one per sender and item for a friend who engaged with that sender before."""

    id = fields.IntField(primary_key=True)
    sender: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="sms_forwards", on_delete=fields.CASCADE
    )
    sender_id: int
    phone = fields.CharField(max_length=32)
    item_id = fields.IntField()
    day = fields.CharField(max_length=10)  # UTC date, ISO
    slot = fields.CharField(max_length=48, default="any")  # any | friend:<sender>:<item>
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "gam_sms_forward"
        unique_together = (("phone", "day", "slot"),)
        indexes = (("sender_id", "day"),)


class MemberBadge(Model):
    """A badge granted once, keyed by its award key (``badge:<code>:<member>``)."""

    merge_unique_per_member = ("code",)  # a merge keeps one of each badge

    id = fields.IntField(primary_key=True)
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="badges", on_delete=fields.CASCADE
    )
    member_id: int
    code = fields.CharField(max_length=48)
    award_key = fields.CharField(max_length=191, unique=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "gam_member_badge"


class BadgeEvent(Model):
    """The audit of badge changes: every grant and revocation, with the metric value that
    decided it (a reversal that takes a badge away is recorded, never silent)."""

    id = fields.BigIntField(primary_key=True)
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="badge_events", on_delete=fields.CASCADE
    )
    member_id: int
    code = fields.CharField(max_length=48)
    action = fields.CharField(max_length=8)  # grant | revoke
    value = fields.IntField(default=0)  # the metric's value at the time
    threshold = fields.IntField(default=0)
    reason = fields.CharField(max_length=128, default="")  # what triggered it: rerun, reversal, forfeit, unmerge
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "gam_badge_event"
        indexes = (("member_id", "code"),)


class Reward(Model):
    """A catalogue entry admins manage: phone credit, data pack or a gift."""

    id = fields.IntField(primary_key=True)
    name = fields.CharField(max_length=128)
    kind = fields.CharField(max_length=16)  # topup | data | gift
    cost = fields.IntField()
    stock = fields.IntField(default=0)
    per_member_limit = fields.IntField(default=1)
    face_value = fields.IntField(default=0)  # yuan for top-ups, MB for data packs
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "gam_reward"


class Redemption(Model):
    """One redemption: the points are spent at once, fulfilment follows (or refunds)."""

    id = fields.IntField(primary_key=True)
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="redemptions", on_delete=fields.CASCADE
    )
    member_id: int
    reward: fields.ForeignKeyRelation[Reward] = fields.ForeignKeyField(
        "models.Reward", related_name="redemptions", on_delete=fields.RESTRICT
    )
    reward_id: int
    cost = fields.IntField()
    request_key = fields.CharField(max_length=191, unique=True)  # the member's request, retries included
    spend_entry_id = fields.BigIntField(null=True)  # the ledger entry a refund reverses
    phone = fields.CharField(max_length=32, default="")
    status = fields.CharField(max_length=16, default="pending", db_index=True)
    # pending (to the provider) | submitted | queued (manual) | fulfilled | failed (refunded)
    provider_ref = fields.CharField(max_length=128, default="")
    note = fields.TextField(default="")
    attempts = fields.IntField(default=0)  # submissions that failed transiently (bounded, then refunded)
    next_attempt_at = fields.DatetimeField(null=True)  # backoff: not resubmitted before this
    submitted_at = fields.DatetimeField(null=True)  # accepted by the provider: the callback timeout runs from here
    created_at = fields.DatetimeField(auto_now_add=True)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "gam_redemption"
