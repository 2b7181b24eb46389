from tortoise import migrations
from tortoise.migrations import operations as ops
import functools
from json import dumps, loads
from tortoise.fields.base import OnDelete
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0003_member_phone')]

    initial = False

    operations = [
        ops.CreateModel(
            name='LinkCode',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('kind', fields.CharField(max_length=8)),
                ('member', fields.ForeignKeyField('models.Member', source_field='member_id', db_constraint=True, to_field='id', related_name='link_codes', on_delete=OnDelete.CASCADE)),
                ('account_id', fields.IntField()),
                ('phone', fields.CharField(null=True, db_index=True, max_length=32)),
                ('code_hash', fields.CharField(db_index=True, max_length=64)),
                ('attempts', fields.IntField(default=0)),
                ('expires_at', fields.DatetimeField(auto_now=False, auto_now_add=False)),
                ('used_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('created_at', fields.DatetimeField(db_index=True, auto_now=False, auto_now_add=True)),
            ],
            options={'table': 'identity_link_code', 'app': 'models', 'pk_attr': 'id', 'table_description': 'A one-time code: ``phone`` (sent by SMS to prove a number) or ``bind`` (shown on one'},
            bases=['Model'],
        ),
        ops.CreateModel(
            name='MemberMerge',
            fields=[
                ('id', fields.IntField(generated=True, primary_key=True, unique=True, db_index=True)),
                ('source', fields.ForeignKeyField('models.Member', source_field='source_id', db_constraint=True, to_field='id', related_name='merged_away', on_delete=OnDelete.CASCADE)),
                ('target', fields.ForeignKeyField('models.Member', source_field='target_id', db_constraint=True, to_field='id', related_name='merged_in', on_delete=OnDelete.CASCADE)),
                ('active_key', fields.IntField(null=True, unique=True)),
                ('via', fields.CharField(max_length=16)),
                ('actor', fields.CharField(default='', max_length=64)),
                ('moved', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('kept', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('columns', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('members', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('hooks', fields.JSONField(default=dict, encoder=functools.partial(dumps, separators=(',', ':')), decoder=loads)),
                ('status', fields.CharField(default='merged', max_length=16)),
                ('created_at', fields.DatetimeField(auto_now=False, auto_now_add=True)),
                ('undone_at', fields.DatetimeField(null=True, auto_now=False, auto_now_add=False)),
                ('undone_by', fields.CharField(default='', max_length=64)),
            ],
            options={'table': 'identity_member_merge', 'app': 'models', 'pk_attr': 'id', 'table_description': '``source`` merged into ``target``: what moved, so that an unmerge can put it back.'},
            bases=['Model'],
        ),
        ops.AddField(
            model_name='Member',
            name='nickname',
            field=fields.CharField(default='', db_default='', max_length=32),
        ),
        # web chat accounts made before server sessions were named by whatever the client sent:
        # set them apart, so that neither a session nor an operator's verified user inherits one
        # (an agent can merge a legacy member into the member's new account from the inbox)
        ops.RunSQL(
            "UPDATE channel_account SET external_id = 'legacy/' || external_id "
            "WHERE channel = 'web' AND external_id NOT LIKE 'session/%' AND external_id NOT LIKE 'legacy/%'",
            reverse_sql="UPDATE channel_account SET external_id = substr(external_id, 8) "
                        "WHERE channel = 'web' AND external_id LIKE 'legacy/%'",
        ),
    ]
