"""Tickets handed off to the phone hotline: when, the call-back number and the agent's note
(the dashboard's hotline layer and repeat-contact figure count them)."""
from tortoise import migrations
from tortoise.migrations import operations as ops
from tortoise import fields

class Migration(migrations.Migration):
    dependencies = [('models', '0011_review_queue')]

    initial = False

    operations = [
        ops.AddField(
            model_name='Ticket',
            name='hotline_at',
            field=fields.DatetimeField(null=True, auto_now=False, auto_now_add=False),
        ),
        ops.AddField(
            model_name='Ticket',
            name='hotline_note',
            field=fields.TextField(null=True, unique=False),
        ),
        ops.AddField(
            model_name='Ticket',
            name='hotline_phone',
            field=fields.CharField(null=True, max_length=32),
        ),
    ]
