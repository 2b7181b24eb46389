"""Community questions and answers."""

from __future__ import annotations

from typing import TYPE_CHECKING

from tortoise import fields
from tortoise.models import Model

if TYPE_CHECKING:
    from bot.core.models import Member

# open: waiting for answers; accepted: the asker took an answer; ticketed: handed to an agent;
# held: waiting for moderation; rejected: removed by a reviewer
QUESTION_STATUSES = ("open", "accepted", "ticketed", "held", "rejected")


class Question(Model):
    id = fields.IntField(primary_key=True)
    code = fields.CharField(max_length=12, unique=True)  # the short id members see and type
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="questions", on_delete=fields.CASCADE
    )
    member_id: int
    channel = fields.CharField(max_length=16)
    text = fields.TextField()
    category = fields.CharField(max_length=32, default="", db_index=True)
    status = fields.CharField(max_length=16, default="open", db_index=True)
    unanswered_id = fields.IntField(null=True)
    accepted_answer_id = fields.IntField(null=True)
    ticket_id = fields.IntField(null=True)
    deadline_at = fields.DatetimeField(db_index=True)
    bump_at = fields.DatetimeField()
    bumped_at = fields.DatetimeField(null=True)
    created_at = fields.DatetimeField(auto_now_add=True, db_index=True)

    class Meta:
        table = "qa_question"


class Answer(Model):
    id = fields.IntField(primary_key=True)
    question: fields.ForeignKeyRelation[Question] = fields.ForeignKeyField(
        "models.Question", related_name="answers", on_delete=fields.CASCADE
    )
    question_id: int
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="answers", on_delete=fields.CASCADE
    )
    member_id: int
    channel = fields.CharField(max_length=16)
    text = fields.TextField()
    status = fields.CharField(max_length=16, default="visible")  # visible | held | rejected
    helpful_count = fields.IntField(default=0)
    accepted = fields.BooleanField(default=False)
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "qa_answer"


class Vote(Model):
    """One member's "helpful" on one answer."""

    id = fields.IntField(primary_key=True)
    answer: fields.ForeignKeyRelation[Answer] = fields.ForeignKeyField(
        "models.Answer", related_name="votes", on_delete=fields.CASCADE
    )
    answer_id: int
    member: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="qa_votes", on_delete=fields.CASCADE
    )
    member_id: int
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "qa_vote"
        unique_together = (("answer", "member"),)


class HelpRequest(Model):
    """A question offered to one helper. ``slot`` 1..N per helper and day makes the daily
    cap hold even when several questions are offered at once."""

    id = fields.IntField(primary_key=True)
    question: fields.ForeignKeyRelation[Question] = fields.ForeignKeyField(
        "models.Question", related_name="help_requests", on_delete=fields.CASCADE
    )
    question_id: int
    helper: fields.ForeignKeyRelation[Member] = fields.ForeignKeyField(
        "models.Member", related_name="help_requests", on_delete=fields.CASCADE
    )
    helper_id: int
    day = fields.CharField(max_length=10)
    slot = fields.IntField()
    created_at = fields.DatetimeField(auto_now_add=True)

    class Meta:
        table = "qa_help_request"
        unique_together = (("question", "helper"), ("helper", "day", "slot"))


class HelperPreference(Model):
    """Whether a member wants to be asked for help ("接收求助")."""

    id = fields.IntField(primary_key=True)
    member: fields.OneToOneRelation[Member] = fields.OneToOneField(
        "models.Member", related_name="helper_pref", on_delete=fields.CASCADE
    )
    member_id: int
    help_requests = fields.BooleanField(default=False)
    updated_at = fields.DatetimeField(auto_now=True)

    class Meta:
        table = "qa_helper_preference"
