from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0002_knowledge_updated_at_index')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Member',
            name='phone',
            field=fields.CharField(null=True, unique=True, max_length=32),
        ),
        ops.AddField(
            model_name='Member',
            name='phone_verified_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
    ]
