"""Tickets: opening (one live ticket per member), the queue order, claiming without
double assignment, agent replies through the outbox, closing with one survey."""

from __future__ import annotations

import asyncio
import logging
import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from tortoise.exceptions import IntegrityError
from tortoise.expressions import Q

from bot.core import point_queries
from bot.core.events import TicketResolved
from bot.core.identity.names import mask_phone
from bot.core.messages import Choice, Outgoing, Reply
from bot.core.models import ChannelAccount, Member, OutboxMessage, TranscriptEntry, UnansweredQuestion
from bot.core.clock import utcnow
from community.inbox import events
from community.inbox.models import HOTLINE_NONCE, REASONS, Ticket, TicketMessage

if TYPE_CHECKING:
    from bot.core.services import Services

log = logging.getLogger(__name__)

LIVE = ("open", "claimed")
SURVEY_WINDOW = timedelta(days=3)  # a late "4" still counts; older digits are just digits


def day_start(now: datetime) -> datetime:
    return now.replace(hour=0, minute=0, second=0, microsecond=0)


async def contact_counts(member_id: int, now: datetime | None = None) -> tuple[int, int]:
    """How many tickets the member opened today and in the last 7 days (this one included)."""
    now = now or utcnow()
    today = await Ticket.filter(member_id=member_id, created_at__gte=day_start(now)).count()
    week = await Ticket.filter(member_id=member_id, created_at__gte=now - timedelta(days=7)).count()
    return today, week


async def open_ticket(
    services: "Services",
    member_id: int,
    channel: str,
    reason: str,
    *,
    summary: str = "",
    question_id: int | None = None,
    unanswered_id: int | None = None,
    said: str = "",
) -> tuple[Ticket, bool]:
    """The member's live ticket, created if there is none; returns (ticket, created).

    ``summary`` is what the member needs (their failed search, their question); ``said`` is
    the message that asked for a person ("人工", "我要投诉…"), kept on the ticket too so the
    agent sees it even when there is no summary."""
    if reason not in REASONS:
        raise ValueError(f"unknown reason {reason!r}")
    now = utcnow()
    existing = await Ticket.get_or_none(open_key=member_id)
    if existing is None:
        member = await Member.get(id=member_id)
        why: list[str] = []
        if reason == "complaint":
            why.append("complaint")
        if "vip" in [str(t).lower() for t in (member.tags or [])]:
            why.append("vip")
        if await Ticket.filter(member_id=member_id, created_at__gte=now - timedelta(days=7)).exists():
            why.append("repeat")
        s = services.settings
        try:
            ticket = await Ticket.create(
                member_id=member_id,
                channel=channel,
                reason=reason,
                summary=summary[:4000],
                open_key=member_id,
                urgent=bool(why),
                urgent_why=why,
                question_id=question_id,
                unanswered_id=unanswered_id,
                first_response_due=now + timedelta(minutes=s.inbox_first_response_minutes),
                resolution_due=now + timedelta(minutes=s.inbox_resolution_minutes),
            )
        except IntegrityError:  # a concurrent request opened it first
            existing = await Ticket.get(open_key=member_id)
        else:
            await _note_member_words(ticket, channel, summary, said)
            await events.publish(services, {"type": "ticket", "ticket": ticket.id, "what": "opened"})
            return ticket, True
    # already live: a complaint makes it urgent, new context is appended
    if reason == "complaint" and "complaint" not in existing.urgent_why:
        existing.urgent_why = [*existing.urgent_why, "complaint"]
        existing.urgent = True
        await Ticket.filter(id=existing.id).update(urgent=True, urgent_why=existing.urgent_why)
    await _note_member_words(existing, channel, summary, said)
    await events.publish(services, {"type": "ticket", "ticket": existing.id, "what": "updated"})
    return existing, False


async def _note_member_words(ticket: Ticket, channel: str, summary: str, said: str) -> None:
    """The summary, then the hand-over message itself when it says something else."""
    texts = [t.strip()[:4000] for t in (summary, said) if t and t.strip()]
    if len(texts) == 2 and texts[0] == texts[1]:
        texts.pop()
    for text in texts:
        await TicketMessage.create(ticket=ticket, author="member", text=text, channel=channel)


async def reprioritize(services: "Services | None", member_id: int) -> bool:
    """After the member's tags changed: their live ticket gains or loses "vip" urgency.
    True when the ticket changed."""
    ticket = await Ticket.get_or_none(open_key=member_id)
    if ticket is None:
        return False
    member = await Member.get(id=member_id)
    vip = "vip" in [str(t).lower() for t in (member.tags or [])]
    why = [w for w in ticket.urgent_why if w != "vip"] + (["vip"] if vip else [])
    if why == list(ticket.urgent_why):
        return False
    done = await Ticket.filter(id=ticket.id, status__in=LIVE).update(urgent_why=why, urgent=bool(why))
    if done and services is not None:
        await events.publish(services, {"type": "ticket", "ticket": ticket.id, "what": "updated"})
    return bool(done)


def sla_breached(ticket: Ticket, now: datetime) -> bool:
    if ticket.status == "closed":
        return False
    if ticket.first_response_at is None and ticket.first_response_due < now:
        return True
    return ticket.resolution_due < now


async def queue(limit: int = 200) -> list[Ticket]:
    """The first ``limit`` live tickets in queue order (ordered and cut in SQL)."""
    from community.inbox import queue as ticket_queue

    return (await ticket_queue.page(ticket_queue.QueueFilter(), 1, limit)).tickets


async def claim(services: "Services", ticket_id: int, staff_id: int) -> bool:
    """Take an unassigned ticket; exactly one of several concurrent claims wins."""
    done = await Ticket.filter(id=ticket_id, status="open", assignee_id=None).update(
        status="claimed", assignee_id=staff_id, claimed_at=utcnow()
    )
    if done:
        await events.publish(services, {"type": "ticket", "ticket": ticket_id, "what": "claimed"})
    return bool(done)


async def assign(services: "Services", ticket_id: int, to_staff_id: int, *, expected_assignee: int | None) -> bool:
    """Hand a ticket over, only if it is still with ``expected_assignee`` (compare and set)."""
    done = await Ticket.filter(id=ticket_id, status__in=LIVE, assignee_id=expected_assignee).update(
        status="claimed", assignee_id=to_staff_id, claimed_at=utcnow()
    )
    if done:
        await events.publish(services, {"type": "ticket", "ticket": ticket_id, "what": "assigned"})
    return bool(done)


async def release(services: "Services", ticket_id: int, staff_id: int) -> bool:
    done = await Ticket.filter(id=ticket_id, status="claimed", assignee_id=staff_id).update(
        status="open", assignee_id=None, claimed_at=None
    )
    if done:
        await events.publish(services, {"type": "ticket", "ticket": ticket_id, "what": "released"})
    return bool(done)


class ReplyRefused(Exception):
    """The ticket is closed or owned by someone else."""


@dataclass(slots=True)
class Sent:
    message: TicketMessage
    delivered: bool  # False: the member has no reachable channel


async def agent_reply(services: "Services", ticket: Ticket, staff_id: int, text: str, nonce: str) -> Sent:
    """Send the agent's reply on the member's own channel, once per form nonce."""
    if ticket.status == "closed":
        raise ReplyRefused("closed")
    if ticket.assignee_id not in (None, staff_id):
        raise ReplyRefused("owned by another agent")
    if ticket.assignee_id is None:
        if not await claim(services, ticket.id, staff_id):
            raise ReplyRefused("owned by another agent")
    old = await TicketMessage.get_or_none(nonce=nonce)
    if old:
        return Sent(old, old.outbox_id is not None)
    try:
        msg = await TicketMessage.create(ticket_id=ticket.id, author="agent", staff_id=staff_id, text=text, nonce=nonce)
    except IntegrityError:
        old = await TicketMessage.get(nonce=nonce)
        return Sent(old, old.outbox_id is not None)
    row = await send_to_member(services, ticket, Reply(text=text, kind="agent"), purpose="agent", key=f"agent:{msg.id}")
    if row is not None:
        await TicketMessage.filter(id=msg.id).update(outbox_id=row.id, channel=row.channel)
        msg.outbox_id = row.id
    await Ticket.filter(id=ticket.id, first_response_at=None).update(first_response_at=utcnow())
    await events.publish(services, {"type": "ticket", "ticket": ticket.id, "what": "reply"})
    return Sent(msg, row is not None)


async def send_to_member(services: "Services", ticket: Ticket, reply: Reply, *, purpose: str, key: str):  # type: ignore[no-untyped-def]
    """On the ticket's channel when the member is still reachable there, else their latest."""
    usable = await ChannelAccount.filter(member_id=ticket.member_id, channel=ticket.channel, active=True).exists()
    return await services.outbox.to_member(
        ticket.member_id, reply, purpose=purpose, idempotency_key=key, channel=ticket.channel if usable else None
    )


class HandOffRefused(Exception):
    """The ticket is closed or another agent owns it."""


class BadPhone(ValueError):
    """The call-back number is not a phone number."""


@dataclass(slots=True)
class HandOff:
    """The outcome of a hand-off to the hotline. ``done`` is False when the ticket had
    already been handed off (a second post changes nothing and sends nothing)."""

    ticket_id: int
    done: bool
    delivered: bool  # the member was told (False: no reachable channel, or not this time)
    phone: str | None  # the number the hotline will call, as stored


MAX_HOTLINE_NOTE = 1000
_PHONE_CHARS = re.compile(r"[+\d][\d \-()]{4,30}")


def callback_phone(raw: str, member: Member) -> str | None:
    """The number the hotline calls: the one the agent typed (digits, an optional leading +),
    else the member's verified phone, else none (the hotline finds them by member id)."""
    raw = raw.strip()
    if raw:
        if not _PHONE_CHARS.fullmatch(raw):
            raise BadPhone(raw)
        digits = re.sub(r"\D", "", raw)
        if not 5 <= len(digits) <= 15:
            raise BadPhone(raw)
        return ("+" if raw.startswith("+") else "") + digits
    if member.phone and member.phone_verified_at is not None:
        return member.phone
    return None


def hotline_reply(services: "Services", locale: str, phone: str | None) -> Reply:
    """What the member is told, in their language; the number is masked (a chat screen is
    not private)."""
    _ = services.translator.bind(locale)
    if phone:
        text = _(
            "Your request has been passed to our hotline. An agent will call you at %(phone)s.", phone=mask_phone(phone)
        )
    else:
        text = _("Your request has been passed to our hotline. An agent will call you back.")
    return Reply(text=text, kind="hotline")


async def hand_off_to_hotline(
    services: "Services", ticket: Ticket, staff_id: int, *, phone: str = "", note: str = "", any_ticket: bool = False
) -> HandOff:
    """Hand the ticket to the phone hotline, once: record it on the ticket, note it in the
    ticket's conversation, tell the member through the outbox and mark their transcript.

    An agent acts on their own or an unassigned ticket (which they then claim);
    ``any_ticket`` (supervisors, admins) acts on any live one. Raises :class:`BadPhone`
    before anything changes, :class:`HandOffRefused` when the ticket is not theirs or closed.
    """
    member = await Member.get(id=ticket.member_id)
    number = callback_phone(phone, member)
    note = note.strip()[:MAX_HOTLINE_NOTE]
    if ticket.hotline_at is not None:
        return HandOff(ticket.id, False, False, ticket.hotline_phone)
    if ticket.status == "closed":
        raise HandOffRefused("closed")
    if not any_ticket and ticket.assignee_id not in (None, staff_id):
        raise HandOffRefused("owned by another agent")
    # once started it runs to the end even if the request is dropped (an agent's page that
    # reloads mid-post): a hand-off recorded without its notice would never be sent
    return await asyncio.shield(_hand_off(services, ticket, member, staff_id, number, note, any_ticket))


async def _hand_off(
    services: "Services", ticket: Ticket, member: Member, staff_id: int, number: str | None, note: str, any_ticket: bool
) -> HandOff:
    now = utcnow()
    if ticket.assignee_id is None:  # the agent takes it (quietly: the "hotline" event below tells the pages)
        claimed = await Ticket.filter(id=ticket.id, status="open", assignee_id=None).update(
            status="claimed", assignee_id=staff_id, claimed_at=now
        )
        if not claimed and not any_ticket and (await Ticket.get(id=ticket.id)).assignee_id != staff_id:
            raise HandOffRefused("owned by another agent")
    q = Ticket.filter(id=ticket.id, status__in=LIVE, hotline_at=None)
    if not any_ticket:
        q = q.filter(assignee_id=staff_id)
    if not await q.update(hotline_at=now, hotline_phone=number, hotline_note=note or None):
        fresh = await Ticket.get(id=ticket.id)
        if fresh.hotline_at is not None:  # a concurrent post won: this one is a no-op
            return HandOff(ticket.id, False, False, fresh.hotline_phone)
        raise HandOffRefused("closed or owned by another agent")
    reply = hotline_reply(services, member.locale, number)
    msg = await TicketMessage.create(
        ticket_id=ticket.id, author="system", staff_id=staff_id, text=reply.text, nonce=HOTLINE_NONCE % ticket.id
    )
    row = await _send_hotline_notice(services, ticket, reply)
    if row is not None:
        await TicketMessage.filter(id=msg.id).update(outbox_id=row.id, channel=row.channel)
    await Ticket.filter(id=ticket.id, first_response_at=None).update(first_response_at=now)
    await events.publish(services, {"type": "ticket", "ticket": ticket.id, "what": "hotline"})
    return HandOff(ticket.id, True, row is not None, number)


async def _send_hotline_notice(services: "Services", ticket: Ticket, reply: Reply) -> OutboxMessage | None:
    """Through the outbox as an agent message (solicited: an opt-out does not stop it), on
    the ticket's channel when still reachable, else the member's latest; the transcript
    line is of kind "hotline", which the dashboard's funnel counts."""
    accounts = ChannelAccount.filter(member_id=ticket.member_id, active=True)
    account = (
        await accounts.filter(channel=ticket.channel).order_by("-id").first()
        or await accounts.filter(last_inbound_at__isnull=False).order_by("-last_inbound_at").first()
        or await accounts.order_by("id").first()
    )
    if account is None:
        return None
    row = await services.outbox.enqueue(
        Outgoing(
            channel=account.channel,
            address=account.chat_id or account.external_id,
            reply=reply,
            member_id=ticket.member_id,
            purpose="agent",
            idempotency_key=HOTLINE_NONCE % ticket.id,
        ),
        transcribe=False,
    )
    await TranscriptEntry.create(
        member_id=ticket.member_id, channel=account.channel, direction="out", text=reply.text, kind="hotline"
    )
    return row


async def add_member_message(services: "Services", ticket: Ticket, text: str, channel: str) -> TicketMessage:
    msg = await TicketMessage.create(ticket_id=ticket.id, author="member", text=text[:4000], channel=channel)
    await events.publish(services, {"type": "ticket", "ticket": ticket.id, "what": "message"})
    return msg


def survey_reply(services: "Services", locale: str, ticket_id: int) -> Reply:
    _ = services.translator.bind(locale)
    return Reply(
        text=_(
            "Your request has been closed. How satisfied are you with our service? Reply with a number from 1 (very unsatisfied) to 5 (very satisfied)."
        ),
        choices=[Choice(label=str(n), action=f"sv:{ticket_id}:{n}") for n in range(1, 6)],
        kind="survey",
    )


async def ticket_question(ticket: Ticket) -> str:
    """What the member asked: the summary stored at hand-over (their failed search or
    community question), else the failed search the ticket links to."""
    if ticket.summary.strip():
        return ticket.summary.strip()
    if ticket.unanswered_id:
        failed = await UnansweredQuestion.get_or_none(id=ticket.unanswered_id)
        if failed is not None:
            return failed.text.strip()
    return ""


async def close(
    services: "Services", ticket_id: int, staff_id: int | None, *, admin: bool = False, answered_by: int | None = None
) -> bool:
    """Close once; the one close that wins sends the satisfaction survey.

    ``answered_by``: the published knowledge item the agent says answered the ticket (the
    caller checks it); the member's question becomes a candidate variant of that item.
    """
    q = Ticket.filter(id=ticket_id, status__in=LIVE)
    if not admin:  # an agent closes their own or an unassigned ticket
        q = q.filter(Q(assignee_id=staff_id) | Q(assignee_id=None))
    now = utcnow()
    done = await q.update(status="closed", closed_at=now, open_key=None)
    if not done:
        return False
    ticket = await Ticket.get(id=ticket_id).select_related("member")
    await TicketMessage.create(ticket_id=ticket.id, author="system", text="closed")
    if answered_by is not None:
        await _learn_from_ticket(services, ticket, answered_by)
    if await Ticket.filter(id=ticket_id, survey_sent_at=None).update(survey_sent_at=now):
        await send_to_member(
            services,
            ticket,
            survey_reply(services, ticket.member.locale, ticket.id),
            purpose="survey",
            key=f"survey:{ticket.id}",
        )
    await events.publish(services, {"type": "ticket", "ticket": ticket_id, "what": "closed"})
    return True


async def _learn_from_ticket(services: "Services", ticket: Ticket, item_id: int) -> None:
    """Note the item on the ticket and offer the member's question as a phrasing of it."""
    await TicketMessage.create(ticket_id=ticket.id, author="system", text=f"answered by knowledge item #{item_id}")
    if ticket.unanswered_id is not None:  # the knowledge exists now: off the "knowledge wanted" list
        await UnansweredQuestion.filter(id=ticket.unanswered_id).update(resolved=True)
    question = await ticket_question(ticket)
    # the ticket is closed either way: the bus logs a failing subscriber (a lost hint) and goes on
    await services.events.publish(
        TicketResolved(ticket_id=ticket.id, member_id=ticket.member_id, item_id=item_id, question=question)
    )


async def record_survey(
    services: "Services", member_id: int, score: int, ticket_id: int | None = None
) -> Ticket | None:
    """Store the 1–5 answer once, on the named ticket or the member's latest surveyed one."""
    if not 1 <= score <= 5:
        return None
    q = Ticket.filter(
        member_id=member_id,
        status="closed",
        survey_score=None,
        survey_sent_at__not_isnull=True,
        survey_sent_at__gte=utcnow() - SURVEY_WINDOW,
    )
    if ticket_id is not None:
        q = q.filter(id=ticket_id)
    ticket = await q.order_by("-survey_sent_at").first()
    if ticket is None:
        return None
    done = await Ticket.filter(id=ticket.id, survey_score=None).update(survey_score=score, survey_at=utcnow())
    if not done:
        return None
    await events.publish(services, {"type": "ticket", "ticket": ticket.id, "what": "survey"})
    ticket.survey_score = score
    return ticket


MAX_COMMENT = 1000


async def record_survey_comment(services: "Services", member_id: int, ticket_id: int, text: str) -> bool:
    """The member's optional words after their score, stored once on their own rated ticket."""
    text = text.strip()[:MAX_COMMENT]
    if not text:
        return False
    done = await Ticket.filter(
        id=ticket_id,
        member_id=member_id,
        survey_score__not_isnull=True,
        survey_comment=None,
        survey_at__gte=utcnow() - SURVEY_WINDOW,
    ).update(survey_comment=text)
    if done:
        await events.publish(services, {"type": "ticket", "ticket": ticket_id, "what": "survey"})
    return bool(done)


async def awaiting_survey(member_id: int) -> bool:
    return await Ticket.filter(
        member_id=member_id, status="closed", survey_score=None, survey_sent_at__gte=utcnow() - SURVEY_WINDOW
    ).exists()


# the member's open or claimed ticket: the row whose open_key is the member's id. The pipeline
# reads it in the same query as the sender's account (bot/app.py) and hands it to the handlers
LIVE_TICKET = point_queries.Beside("live_ticket", Ticket, "open_key")


async def live_ticket(member_id: int) -> Ticket | None:
    """The member's open or claimed ticket (an agent owning it keeps the bot quiet)."""
    return await point_queries.get_or_none(Ticket, open_key=member_id)
