"""Everything an agent sees on one ticket, gathered so the member never repeats themselves."""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import TYPE_CHECKING, Any

from bot.core.models import ChannelAccount, Member, UnansweredQuestion
from community.inbox import transcript as transcripts
from community.inbox.models import Ticket, TicketMessage
from community.inbox.service import contact_counts, sla_breached
from community.members import tags as member_tags
from community.members.models import MemberTagChange
from community.models import KnowledgeItem
from community.qa import rewards
from community.qa.models import Answer, Question

if TYPE_CHECKING:
    from bot.core.services import Services
    from gamification.service import Gamification

TRANSCRIPT_LIMIT = 80
CANNED_LIMIT = 3


def minutes_left(due: datetime, now: datetime) -> int:
    return int((due - now).total_seconds() // 60)


@dataclass
class TicketView:
    ticket: Ticket
    member: Member
    accounts: list[ChannelAccount]
    messages: list[TicketMessage]
    transcript: list[transcripts.Line]
    failed: list[UnansweredQuestion]
    question: Question | None
    answers: list[Answer]
    tags: list[str]
    tenure_days: int
    profile: dict[str, Any]
    today: int
    week: int
    canned: list[KnowledgeItem]
    first_response_left: int | None
    resolution_left: int | None
    breached: bool
    tag_history: list[MemberTagChange] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)


async def canned_replies(
    services: "Services", text: str, locale: str, limit: int = CANNED_LIMIT
) -> list[KnowledgeItem]:
    """Knowledge items close to ``text`` (what the member asked, or the agent's search),
    for one-click replies."""
    if not text.strip():
        return []
    decision = await services.kb.adecide(text, locale)
    ids = [m.item_id for m in decision.matches[:limit]]
    items = {i.id: i for i in await KnowledgeItem.filter(id__in=ids, status="published")}
    return [items[i] for i in ids if i in items]


async def ticket_messages(ticket_id: int) -> list[TicketMessage]:
    """The ticket's own messages in the order they happened."""
    return list(await TicketMessage.filter(ticket_id=ticket_id).order_by("created_at", "id").select_related("staff"))


async def ticket_view(
    services: "Services", gamification: "Gamification", ticket: Ticket, _: transcripts.Translate | None = None
) -> TicketView:
    """``_`` is the reader's gettext (the staff page's locale) for tapped-button labels."""
    now = datetime.now(timezone.utc)
    member = await Member.get(id=ticket.member_id)
    transcript = await transcripts.lines_for(member.id, _ or services.translator.bind("en"), TRANSCRIPT_LIMIT)
    failed_q = UnansweredQuestion.filter(member_id=member.id).order_by("-id").limit(3)
    failed = await failed_q
    if ticket.unanswered_id and all(f.id != ticket.unanswered_id for f in failed):
        extra = await UnansweredQuestion.get_or_none(id=ticket.unanswered_id)
        failed = ([extra] if extra else []) + failed
    question = await Question.get_or_none(id=ticket.question_id) if ticket.question_id else None
    answers = await Answer.filter(question_id=question.id).order_by("-accepted", "-helpful_count") if question else []
    today, week = await contact_counts(member.id, now)
    messages = await ticket_messages(ticket.id)
    last_member_text = next((m.text for m in reversed(messages) if m.author == "member"), "") or ticket.summary
    return TicketView(
        ticket=ticket,
        member=member,
        accounts=await ChannelAccount.filter(member_id=member.id).order_by("channel"),
        messages=messages,
        transcript=transcript,
        failed=failed,
        question=question,
        answers=list(answers),
        tags=[str(t) for t in (member.tags or [])],
        tenure_days=max(0, (now - member.created_at).days),
        profile=await rewards.member_profile(gamification, member.id),
        today=today,
        week=week,
        canned=await canned_replies(services, last_member_text, member.locale),
        first_response_left=None if ticket.first_response_at else minutes_left(ticket.first_response_due, now),
        resolution_left=None if ticket.status == "closed" else minutes_left(ticket.resolution_due, now),
        breached=sla_breached(ticket, now),
        tag_history=await member_tags.history(member.id, 10),
    )
