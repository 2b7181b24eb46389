"""Outbox claims carry a fencing token: a worker whose lease expired and passed to another
changes nothing when it finishes late (``bot.core.outbox.claim_row``)."""
from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields


class Migration(migrations.Migration):
    dependencies = [('models', '0012_ticket_hotline')]

    initial = False

    operations = [
        ops.AddField(
            model_name='OutboxMessage',
            name='claim_token',
            field=fields.CharField(null=True, max_length=32),
        ),
    ]
