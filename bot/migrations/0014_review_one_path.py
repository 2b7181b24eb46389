"""The kinds' own staff pages decide through the review queue (``community.review.service``):
close the reviews those pages left pending when they still decided directly.

Until now the queue closed such a review when it was next read (``settle_stale``); that
reconciliation remains only for what no staff page settles (late top-up callbacks, phrasings
auto-accepted at the quorum). For the three kinds only staff decide — held content, review
flags, contributions — a pending review whose target no longer waits is marked ``ignored``
here, once, with an audit row, as ``settle_stale`` did."""
from tortoise import migrations
from tortoise.migrations import operations as ops

NOTE = "settled outside the review queue (migration 0014_review_one_path)"

# kind -> (target table, the target still waits)
_STAFF_ONLY = {
    "moderation_item": ("moderation_review_item", "t.status = 'pending'"),
    "moderation_flag": ("gam_review_flag", "t.status = 'open'"),
    "contribution": ("knowledge_contribution", "t.status = 'pending'"),
}


def _stale(kind: str) -> str:
    table, waits = _STAFF_ONLY[kind]
    return (
        f"review_reviewable.kind = '{kind}' AND review_reviewable.status = 'pending'"
        f" AND NOT EXISTS (SELECT 1 FROM {table} t WHERE t.id = review_reviewable.target_id AND {waits})"
    )


def settle_sql() -> list[str]:
    """Per kind: the audit rows, then the reviews (SQL both SQLite and PostgreSQL run; a
    second run finds nothing pending to settle)."""
    out = []
    for kind in _STAFF_ONLY:
        out.append(
            "INSERT INTO review_action (reviewable_id, action, actor, note, created_at)"
            f" SELECT review_reviewable.id, 'ignore', 'system', '{NOTE}', CURRENT_TIMESTAMP"
            f" FROM review_reviewable WHERE {_stale(kind)}"
        )
        out.append(
            "UPDATE review_reviewable SET status = 'ignored', pending_key = NULL,"
            f" reviewed_at = CURRENT_TIMESTAMP, updated_at = CURRENT_TIMESTAMP WHERE {_stale(kind)}"
        )
    return out


async def settle(apps, schema_editor) -> None:  # noqa: ANN001 - tortoise's RunPython signature
    for sql in settle_sql():
        await schema_editor.client.execute_query(sql)


async def unsettle(apps, schema_editor) -> None:  # noqa: ANN001
    return None  # the targets were decided: nothing to reopen


class Migration(migrations.Migration):
    dependencies = [('models', '0013_outbox_claim_token')]

    initial = False

    operations = [
        ops.RunPython(settle, unsettle),
    ]
