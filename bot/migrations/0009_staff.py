from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index


async def backfill_tag_rows(apps, schema_editor) -> None:  # type: ignore[no-untyped-def]
    """Tags set before they were rows (``Member.tags`` lists) become rows, so the inbox can
    filter by them. Normalised as community.members.tags does; bad values are skipped."""
    import json

    from community.members.tags import TagError, normalize_tag

    client = schema_editor.client
    dialect = client.capabilities.dialect
    _, rows = await client.execute_query("SELECT id, tags FROM member")
    for row in rows:
        raw = row["tags"]
        values = json.loads(raw) if isinstance(raw, str) else (raw or [])
        seen: set[str] = set()
        for value in values if isinstance(values, list) else []:
            try:
                tag = normalize_tag(value)
            except TagError:
                continue
            if tag in seen:
                continue
            seen.add(tag)
            params = [row["id"], tag]
            sql = ("INSERT INTO member_tag (member_id, tag, created_at) VALUES (?, ?, CURRENT_TIMESTAMP)"
                   if dialect == "sqlite" else
                   "INSERT INTO member_tag (member_id, tag, created_at) VALUES ($1, $2, CURRENT_TIMESTAMP)")
            await client.execute_query(sql, params)


class Migration(migrations.Migration):
    dependencies = [('models', '0008_security')]

    initial = False

    operations = [
        ops.CreateModel(
            name='MemberTag',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('member', fields.ForeignKeyField('models.Member', source_field='member_id', db_constraint=True, to_field='id', related_name='tag_rows', on_delete=OnDelete.CASCADE)),
                ('tag', fields.CharField(max_length=64)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'member_tag', 'app': 'models', 'unique_together': (('member', 'tag'),), 'indexes': [Index(fields=['tag', 'member_id'])], 'pk_attr': 'id', 'table_description': 'One tag on one member. ``Member.tags`` is kept equal to these rows by'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MemberTagChange',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('member', fields.ForeignKeyField('models.Member', source_field='member_id', db_constraint=True, to_field='id', related_name='tag_changes', on_delete=OnDelete.CASCADE)),
                ('tag', fields.CharField(max_length=64)),
                ('op', fields.CharField(max_length=8)),
                ('actor', fields.CharField(max_length=128)),
                ('source', fields.CharField(max_length=16)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'member_tag_change', 'app': 'models', 'pk_attr': 'id', 'table_description': 'Who added or removed which tag on which member, from where (inbox, api, cli).'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='MemberStanding',
            name='clean_until',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='MemberStanding',
            name='episode',
            field=fields.IntField(default=0),
        ),
        ops.AddField(
            model_name='Ticket',
            name='survey_comment',
            field=fields.TextField(null=True, unique=False),
        ),
        ops.RunPython(backfill_tag_rows, ops.RunPython.noop),
    ]
