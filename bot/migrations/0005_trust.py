from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise.fields.base import OnDelete
from tortoise import fields
from tortoise.indexes import Index

class Migration(migrations.Migration):
    dependencies = [('models', '0004_identity')]

    initial = False

    operations = [
        ops.CreateModel(
            name='SmsForward',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('sender', fields.ForeignKeyField('models.Member', source_field='sender_id', db_constraint=True, to_field='id', related_name='sms_forwards', on_delete=OnDelete.CASCADE)),
                ('phone', fields.CharField(max_length=32)),
                ('item_id', fields.IntField()),
                ('day', fields.CharField(max_length=10)),
                ('slot', fields.CharField(default='any', max_length=48)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'gam_sms_forward', 'app': 'models', 'unique_together': (('phone', 'day', 'slot'),), 'indexes': [Index(fields=['sender_id', 'day'])], 'pk_attr': 'id', 'table_description': 'One ``ZF`` SMS forward: at most one a day per number from anyone (``slot`` "any"), plus'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='ForwardEngagement',
            name='network',
            field=fields.CharField(default='', max_length=64),
        ),
        ops.AddField(
            model_name='ForwardRating',
            name='rater_member_id',
            field=fields.IntField(null=True),
        ),
        ops.AddField(
            model_name='ForwardRating',
            name='weight',
            field=fields.FloatField(default=1.0),
        ),
        ops.AddField(
            model_name='LedgerEntry',
            name='hold_until',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
