"""The review queue (issue #21): ``Reviewable`` and its audit, and a pending reviewable for
every row of the five kinds that waited for staff when this ran."""
from tortoise import migrations
from tortoise.migrations import operations as ops
from community.review.models import Kind, Status
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

# one INSERT ... SELECT per kind, in SQL both SQLite and PostgreSQL run; a row that already
# has a pending reviewable (same pending_key) is skipped, so the step can run again
_BACKFILL = {
    "moderation_item": ("ReviewItem", "moderation_review_item t", "t.status = 'pending'",
                        "t.action", "t.text", "t.member_id"),
    "moderation_flag": ("ReviewFlag", "gam_review_flag t", "t.status = 'open'",
                        "t.reason", "t.reason", "t.member_id"),
    "contribution": ("KnowledgeContribution", "knowledge_contribution t", "t.status = 'pending'",
                     "'member contribution'", "t.text", "t.member_id"),
    "candidate_variant": ("CandidateVariant", "knowledge_candidate_variant t", "t.status = 'candidate'",
                          "'learned from use'", "t.text", "NULL"),
    "redemption": ("Redemption", "gam_redemption t JOIN gam_reward w ON w.id = t.reward_id",
                   "t.status = 'queued'", "SUBSTR(t.note, 1, 255)", "w.name", "t.member_id"),
}


def backfill_sql() -> list[str]:
    out = []
    for kind, (target_type, source, where, reason, summary, member) in _BACKFILL.items():
        key = f"'{kind}:' || CAST(t.id AS TEXT)"
        out.append(
            "INSERT INTO review_reviewable (kind, target_type, target_id, status, reason, summary, created_by_id,"
            " pending_key, created_at, updated_at)"
            f" SELECT '{kind}', '{target_type}', t.id, 'pending', {reason}, SUBSTR({summary}, 1, 500), {member},"
            f" {key}, t.created_at, t.created_at FROM {source} WHERE {where}"
            f" AND NOT EXISTS (SELECT 1 FROM review_reviewable r WHERE r.pending_key = {key})")
    out.append(
        "INSERT INTO review_action (reviewable_id, action, actor, note, created_at)"
        " SELECT r.id, 'open', 'system', 'opened by migration 0011_review_queue', r.created_at"
        " FROM review_reviewable r WHERE NOT EXISTS (SELECT 1 FROM review_action a WHERE a.reviewable_id = r.id)")
    return out


async def backfill(apps, schema_editor) -> None:  # noqa: ANN001 - tortoise's RunPython signature
    """Every pending row of the five kinds becomes a pending reviewable."""
    for sql in backfill_sql():
        await schema_editor.client.execute_query(sql)


async def unfill(apps, schema_editor) -> None:  # noqa: ANN001
    return None  # the tables go with the CreateModel operations


class Migration(migrations.Migration):
    dependencies = [('models', '0010_badges')]

    initial = False

    operations = [
        ops.CreateModel(
            name='Reviewable',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('kind', fields.CharEnumField(db_index=True, description='MODERATION_ITEM: moderation_item\nMODERATION_FLAG: moderation_flag\nCONTRIBUTION: contribution\nCANDIDATE_VARIANT: candidate_variant\nREDEMPTION: redemption', enum_type=Kind, max_length=24)),
                ('target_type', fields.CharField(max_length=32)),
                ('target_id', fields.IntField()),
                ('status', fields.CharEnumField(default=Status.PENDING, db_index=True, description='PENDING: pending\nAPPROVED: approved\nREJECTED: rejected\nIGNORED: ignored', enum_type=Status, max_length=16)),
                ('reason', fields.CharField(default='', max_length=255)),
                ('summary', fields.CharField(default='', max_length=500)),
                ('created_by', fields.ForeignKeyField('models.Member', source_field='created_by_id', null=True, db_constraint=True, to_field='id', related_name='reviewables', on_delete=OnDelete.SET_NULL)),
                ('reviewed_by', fields.ForeignKeyField('models.StaffUser', source_field='reviewed_by_id', null=True, db_constraint=True, to_field='id', related_name='reviewables', on_delete=OnDelete.SET_NULL)),
                ('reviewed_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('pending_key', fields.CharField(null=True, unique=True, max_length=64)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
                ('updated_at', fields.DatetimeField(auto_now=True, auto_now_add=False)),
            ],
            options={'table': 'review_reviewable', 'app': 'models', 'indexes': [Index(fields=['target_type', 'target_id'])], 'pk_attr': 'id', 'table_description': "Something waiting for a staff decision, whatever its kind (Discourse's Reviewable)."},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='ReviewableAction',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('reviewable', fields.ForeignKeyField('models.Reviewable', source_field='reviewable_id', db_constraint=True, to_field='id', related_name='actions', on_delete=OnDelete.CASCADE)),
                ('action', fields.CharField(max_length=16)),
                ('actor', fields.CharField(max_length=96)),
                ('staff', fields.ForeignKeyField('models.StaffUser', source_field='staff_id', null=True, db_constraint=True, to_field='id', related_name='review_actions', on_delete=OnDelete.SET_NULL)),
                ('note', fields.TextField(default='', unique=False)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'review_action', 'app': 'models', 'pk_attr': 'id', 'table_description': 'The audit of a reviewable: opened, approved, rejected or settled elsewhere, by whom.'},
            bases=['Model'],
        ),
        ops.RunPython(backfill, unfill),
    ]
