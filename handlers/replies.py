"""Reply builders shared by handlers, so every path shows an item the same way."""

from __future__ import annotations

from bot.core.messages import Choice, Reply
from community.models import KnowledgeItem
from handlers.router import Context


def answer_reply(ctx: Context, item: KnowledgeItem, confidence: float | None, *, kind: str = "answer") -> Reply:
    """A knowledge answer with the 👍/👎 question and the forward button."""
    _ = ctx._
    question = _("Was this answer helpful?")
    return Reply(
        text=f"{item.title}\n\n{item.answer.strip()}\n\n{question}",
        choices=[
            Choice(label=_("👍 Helpful"), action=f"fb:up:{item.id}"),
            Choice(label=_("👎 Not helpful"), action=f"fb:down:{item.id}"),
            Choice(label=_("Forward to a friend"), action=f"fw:{item.id}"),
        ],
        kind=kind,
        item_id=item.id,
        confidence=confidence,
    )


def next_steps(ctx: Context, text: str, *, kind: str = "none") -> Reply:
    """What the member can do when the knowledge base has no answer."""
    _ = ctx._
    return Reply(
        text=text,
        choices=[
            Choice(label=_("Ask the community"), action="post"),
            Choice(label=_("Talk to a person"), action="human"),
        ],
        kind=kind,
    )
