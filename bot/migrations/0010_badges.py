from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0009_staff')]

    initial = False

    operations = [
        ops.CreateModel(
            name='BadgeEvent',
            fields=[
                ('id', fields.BigIntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('member', fields.ForeignKeyField('models.Member', source_field='member_id', db_constraint=True, to_field='id', related_name='badge_events', on_delete=OnDelete.CASCADE)),
                ('code', fields.CharField(max_length=48)),
                ('action', fields.CharField(max_length=8)),
                ('value', fields.IntField(default=0)),
                ('threshold', fields.IntField(default=0)),
                ('reason', fields.CharField(default='', max_length=128)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'gam_badge_event', 'app': 'models', 'indexes': [Index(fields=['member_id', 'code'])], 'pk_attr': 'id', 'table_description': 'The audit of badge changes: every grant and revocation, with the metric value that'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Redemption',
            name='attempts',
            field=fields.IntField(default=0),
        ),
        ops.AddField(
            model_name='Redemption',
            name='next_attempt_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Redemption',
            name='submitted_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
