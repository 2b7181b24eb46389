"""Staff users and their login sessions."""

from __future__ import annotations

from typing import Any

from tortoise import fields
from tortoise.models import Model

ROLES = ("agent", "reviewer", "marketer", "admin")


class StaffUser(Model):
    id = fields.IntField(primary_key=True)
    username = fields.CharField(max_length=64, unique=True)
    display_name = fields.CharField(max_length=128, default="")
    password_hash = fields.CharField(max_length=255)
    roles: fields.JSONField[list[str]] = fields.JSONField(default=list)  # subset of ROLES; admin may do everything
    active = fields.BooleanField(default=True)
    created_at = fields.DatetimeField(auto_now_add=True)
    last_login_at = fields.DatetimeField(null=True)

    class Meta:
        table = "staff_user"

    def has_role(self, *roles: str) -> bool:
        return "admin" in self.roles or any(r in self.roles for r in roles)


class StaffSession(Model):
    """A login. Only the token's hash is stored, and the CSRF token is bound to it."""

    id = fields.IntField(primary_key=True)
    token_hash = fields.CharField(max_length=64, unique=True)
    staff: fields.ForeignKeyRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="sessions", on_delete=fields.CASCADE
    )
    staff_id: int
    csrf_token = fields.CharField(max_length=64)
    created_at = fields.DatetimeField(auto_now_add=True)
    expires_at = fields.DatetimeField()

    class Meta:
        table = "staff_session"


class StaffAudit(Model):
    """Who did what to which ticket, item, reward or member (``bot.staff.audit.record``).

    ``username`` is kept as it was at the time, so the row still reads right after the
    account is renamed or removed."""

    id = fields.BigIntField(primary_key=True)
    staff: fields.ForeignKeyNullableRelation[StaffUser] = fields.ForeignKeyField(
        "models.StaffUser", related_name="audit", null=True, on_delete=fields.SET_NULL
    )
    staff_id: int | None
    username = fields.CharField(max_length=64, default="")
    action = fields.CharField(max_length=48)  # e.g. login, ticket.reply, knowledge.edit, reward.save
    target_type = fields.CharField(max_length=24, default="")  # ticket | item | version | reward | member | ...
    target_id = fields.CharField(max_length=64, default="")
    detail: fields.JSONField[dict[str, Any]] = fields.JSONField(default=dict)
    ip = fields.CharField(max_length=64, default="")
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "staff_audit"
        indexes = (("target_type", "target_id"),)
