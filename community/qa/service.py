"""Posting, offering, answering, voting and accepting community questions.

Every step is a conditional write, so a retried button press or two workers doing the
same thing act once. Member-facing notifications go through the outbox on the
recipient's own channel.
"""

from __future__ import annotations

import enum
import logging
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.functions import Count

from bot.core.events import AnswerAccepted, AnswerHelpful, AnswerRemoved
from bot.core.i18n import Gettext
from bot.core.messages import Card, Choice, Reply
from bot.core.models import Member
from bot.core.clock import utcnow
from community.models import KnowledgeItem
from community.moderation import service as moderation
from community.moderation.matcher import Verdict
from community.qa.models import Answer, HelperPreference, HelpRequest, Question, Vote

if TYPE_CHECKING:
    from bot.core.services import Services

log = logging.getLogger(__name__)

CODE_ALPHABET = "23456789abcdefghjkmnpqrstuvwxyz"  # no 0/o, 1/l/i: easy to type from SMS
CODE_LEN = 6
MAX_TEXT = 2000


def new_code() -> str:
    return "".join(secrets.choice(CODE_ALPHABET) for _ in range(CODE_LEN))


def normalize_code(raw: str) -> str:
    return raw.strip().lower().lstrip("#").removeprefix("q_")[:12]


def question_url(services: "Services", code: str) -> str:
    return f"{services.settings.public_url.rstrip('/')}/questions/{code}"


async def member_gettext(services: "Services", member_id: int) -> Gettext:
    member = await Member.get_or_none(id=member_id)
    return services.translator.bind(member.locale if member else services.settings.default_locale)


async def category_of(services: "Services", text: str, locale: str | None) -> str:
    """The category of the closest knowledge item, to find helpers who know the area."""
    decision = await services.kb.adecide(text, locale)
    if not decision.matches:
        return ""
    item = await KnowledgeItem.get_or_none(id=decision.matches[0].item_id)
    return item.category if item else ""


class Status(enum.Enum):
    OK = "ok"
    BLOCKED = "blocked"
    HELD = "held"
    MISSING = "missing"
    NOT_ALLOWED = "not_allowed"
    ALREADY = "already"
    CLOSED = "closed"


@dataclass(slots=True)
class Posted:
    status: Status
    question: Question | None = None
    verdict: Verdict | None = None
    offered: int = 0


async def post_question(
    services: "Services",
    member_id: int,
    channel: str,
    text: str,
    *,
    locale: str | None = None,
    unanswered_id: int | None = None,
) -> Posted:
    text = text.strip()[:MAX_TEXT]
    verdict = await moderation.screen(text)
    if verdict.action == "block":
        await moderation.record(
            services, verdict, member_id=member_id, content_type="question", content_id=None, text=text
        )
        return Posted(Status.BLOCKED, verdict=verdict)
    now = utcnow()
    s = services.settings
    category = await category_of(services, text, locale)
    question = None
    for _attempt in range(5):
        try:
            question = await Question.create(
                code=new_code(),
                member_id=member_id,
                channel=channel,
                text=verdict.text,
                category=category,
                status="open" if verdict.allowed else "held",
                unanswered_id=unanswered_id,
                deadline_at=now + timedelta(minutes=s.qa_deadline_minutes),
                bump_at=now + timedelta(minutes=min(s.qa_bump_minutes, s.qa_deadline_minutes)),
            )
            break
        except IntegrityError:  # code collision: draw again
            continue
    if question is None:
        raise RuntimeError("could not allocate a question code")
    await moderation.record(
        services, verdict, member_id=member_id, content_type="question", content_id=question.id, text=text
    )
    if question.status == "held":
        return Posted(Status.HELD, question, verdict)
    offered = await offer_to_helpers(services, question)
    return Posted(Status.OK, question, verdict, offered)


async def ranked_helpers(category: str, exclude: set[int], limit: int) -> list[int]:
    """Opted-in members, best helpers in the category first, then overall, then anyone opted in."""
    opted: set[int] = set(
        await HelperPreference.filter(  # type: ignore[arg-type]  # tortoise types flat=True as tuples
            help_requests=True
        ).values_list("member_id", flat=True)
    )
    opted -= exclude
    if not opted:
        return []
    ranked: list[int] = []
    for scope in ([category] if category else []) + [None]:
        q = Answer.filter(member_id__in=list(opted), status="visible")
        if scope is not None:
            q = q.filter(question__category=scope)
        rows = await q.annotate(n=Count("id")).group_by("member_id").order_by("-n").values("member_id", "n")
        accepted = dict(
            await Answer.filter(
                member_id__in=list(opted), accepted=True, **({"question__category": scope} if scope else {})
            )
            .annotate(a=Count("id"))
            .group_by("member_id")
            .values_list("member_id", "a")
        )
        rows.sort(key=lambda r: (-(accepted.get(r["member_id"], 0) * 3 + r["n"]), r["member_id"]))
        for r in rows:
            if r["member_id"] not in ranked:
                ranked.append(r["member_id"])
    ranked += sorted(opted - set(ranked))  # newcomers who opted in
    return ranked[: max(limit * 4, limit)]


async def offer_to_helpers(services: "Services", question: Question, *, now: datetime | None = None) -> int:
    """Offer the question to up to N likely helpers, each at most the daily cap."""
    now = now or utcnow()
    s = services.settings
    asked: set[int] = set(
        await HelpRequest.filter(  # type: ignore[arg-type]  # tortoise types flat=True as tuples
            question_id=question.id
        ).values_list("helper_id", flat=True)
    )
    candidates = await ranked_helpers(question.category, asked | {question.member_id}, s.qa_helpers_per_question)
    day = now.date().isoformat()
    offered = 0
    for helper_id in candidates:
        if offered >= s.qa_helpers_per_question:
            break
        if await _take_slot(question.id, helper_id, day, s.qa_helper_daily_limit):
            offered += 1
            _ = await member_gettext(services, helper_id)
            await services.outbox.to_member(
                helper_id,
                Reply(
                    text=_(
                        "A member needs help with a question you may know (%(code)s):\n%(text)s",
                        code=question.code,
                        text=question.text,
                    ),
                    choices=[Choice(label=_("Answer it"), action=f"ans:{question.code}")],
                    cards=[Card(title=question.code, url=question_url(services, question.code))],
                    kind="help_request",
                ),
                purpose="notification",
                idempotency_key=f"qa-offer:{question.id}:{helper_id}",
            )
    return offered


async def _take_slot(question_id: int, helper_id: int, day: str, cap: int) -> bool:
    used = await HelpRequest.filter(helper_id=helper_id, day=day).count()
    for slot in range(used + 1, cap + 1):
        try:
            await HelpRequest.create(question_id=question_id, helper_id=helper_id, day=day, slot=slot)
            return True
        except IntegrityError:
            if await HelpRequest.filter(question_id=question_id, helper_id=helper_id).exists():
                return False  # already offered this question
            continue  # a concurrent offer took this slot: try the next one
    return False


async def set_helper(member_id: int, on: bool) -> None:
    pref, created = await HelperPreference.get_or_create(member_id=member_id, defaults={"help_requests": on})
    if not created and pref.help_requests != on:
        await HelperPreference.filter(id=pref.id).update(help_requests=on)


async def by_code(code: str) -> Question | None:
    return await Question.get_or_none(code=normalize_code(code))


async def open_questions(limit: int = 20, *, exclude_member: int | None = None) -> list[Question]:
    q = Question.filter(status="open")
    if exclude_member is not None:
        q = q.exclude(member_id=exclude_member)
    return await q.order_by("-created_at").limit(limit)


async def visible_answers(question_id: int) -> list[Answer]:
    return await Answer.filter(question_id=question_id, status="visible").order_by("-accepted", "-helpful_count", "id")


@dataclass(slots=True)
class Answered:
    status: Status
    answer: Answer | None = None


async def post_answer(services: "Services", member_id: int, channel: str, question: Question, text: str) -> Answered:
    if question.member_id == member_id:
        return Answered(Status.NOT_ALLOWED)
    if question.status not in ("open", "ticketed"):
        return Answered(Status.CLOSED)
    text = text.strip()[:MAX_TEXT]
    verdict = await moderation.screen(text)
    if verdict.action == "block":
        await moderation.record(
            services, verdict, member_id=member_id, content_type="answer", content_id=None, text=text
        )
        return Answered(Status.BLOCKED)
    answer = await Answer.create(
        question_id=question.id,
        member_id=member_id,
        channel=channel,
        text=verdict.text,
        status="visible" if verdict.allowed else "held",
    )
    await moderation.record(
        services, verdict, member_id=member_id, content_type="answer", content_id=answer.id, text=text
    )
    if answer.status == "held":
        return Answered(Status.HELD, answer)
    await notify_asker(services, question, answer)
    return Answered(Status.OK, answer)


async def notify_asker(services: "Services", question: Question, answer: Answer) -> None:
    _ = await member_gettext(services, question.member_id)
    await services.outbox.to_member(
        question.member_id,
        Reply(
            text=_(
                "New answer to your question %(code)s:\n%(answer)s\n\nDid it solve your problem?",
                code=question.code,
                answer=answer.text,
            ),
            choices=[
                Choice(label=_("Accept this answer"), action=f"acc:{answer.id}"),
                Choice(label=_("👍 Helpful"), action=f"vote:{answer.id}"),
                Choice(label=_("It did not help, talk to a person"), action=f"unhelp:{question.code}"),
            ],
            kind="peer_answer",
        ),
        purpose="system",  # the asker asked for this: it goes out even to opted-out members
        idempotency_key=f"qa-answer:{answer.id}",
    )


async def accept(services: "Services", member_id: int, answer_id: int) -> tuple[Status, Answer | None]:
    """The asker accepts one answer: closes the question, rewards the answerer once."""
    answer = await Answer.get_or_none(id=answer_id, status="visible").select_related("question")
    if answer is None:
        return Status.MISSING, None
    question = answer.question
    if question.member_id != member_id:
        return Status.NOT_ALLOWED, answer
    done = await Question.filter(id=question.id, accepted_answer_id=None, status__in=("open", "ticketed")).update(
        status="accepted", accepted_answer_id=answer.id
    )
    if not done:
        return Status.ALREADY, answer
    await Answer.filter(id=answer.id).update(accepted=True)
    answer.accepted = True
    await services.events.publish(
        AnswerAccepted(answer_id=answer.id, answerer_id=answer.member_id, asker_id=member_id, question_id=question.id)
    )
    _ = await member_gettext(services, answer.member_id)
    await services.outbox.to_member(
        answer.member_id,
        Reply(
            text=_("Your answer to question %(code)s was accepted. Thank you for helping!", code=question.code),
            kind="accepted",
        ),
        purpose="notification",
        idempotency_key=f"qa-accepted:{answer.id}",
    )
    return Status.OK, answer


async def vote_helpful(services: "Services", member_id: int, answer_id: int) -> Status:
    answer = await Answer.get_or_none(id=answer_id, status="visible")
    if answer is None:
        return Status.MISSING
    if answer.member_id == member_id:
        return Status.NOT_ALLOWED
    try:
        await Vote.create(answer_id=answer.id, member_id=member_id)
    except IntegrityError:
        return Status.ALREADY
    await Answer.filter(id=answer.id).update(helpful_count=F("helpful_count") + 1)
    await services.events.publish(AnswerHelpful(answer_id=answer.id, answerer_id=answer.member_id, voter_id=member_id))
    return Status.OK


async def on_review(services: "Services", content_type: str, content_id: int, approved: bool) -> None:
    """A reviewer decided on a held or flagged question/answer."""
    if content_type == "question":
        if approved:
            if await Question.filter(id=content_id, status="held").update(status="open"):
                question = await Question.get(id=content_id)
                now = utcnow()
                s = services.settings
                await Question.filter(id=content_id).update(
                    deadline_at=now + timedelta(minutes=s.qa_deadline_minutes),
                    bump_at=now + timedelta(minutes=min(s.qa_bump_minutes, s.qa_deadline_minutes)),
                )
                await offer_to_helpers(services, question)
        else:
            await Question.filter(id=content_id, status__in=("held", "open")).update(status="rejected")
    elif content_type == "answer":
        if approved:
            if await Answer.filter(id=content_id, status="held").update(status="visible"):
                answer = await Answer.get(id=content_id).select_related("question")
                await notify_asker(services, answer.question, answer)
        else:
            if await Answer.filter(id=content_id, status__in=("held", "visible")).update(status="rejected"):
                await services.events.publish(AnswerRemoved(answer_id=content_id, reason="moderation"))
