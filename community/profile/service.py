"""What a member's public profile shows, gathered from the Q&A and the points domains."""

from __future__ import annotations

from typing import cast

from dataclasses import dataclass
from datetime import datetime

from bot.core.i18n import N_, Gettext
from bot.core.models import Member
from community.qa.models import Answer, Question
from gamification import badges, ledger
from gamification.models import MemberBadge
from gamification.service import names_and_titles

# how each badge metric is earned, for the badges page: msgid with %(n)s = the threshold
HOW_TO_EARN = {
    "accepted": N_("Have %(n)s of your answers accepted by the members who asked"),
    "reached": N_("Reach %(n)s different people by forwarding answers"),
    "credible": N_("Have your forwarded answers rated accurate by the people who read them"),
    "streak": N_("Solve your own questions with the knowledge base %(n)s days in a row"),
    "self_service": N_(
        "Score %(n)s in self-service: each day a knowledge-base answer solved your question (👍) plus each of your answers accepted by a peer"
    ),
}
RECENT = 10


@dataclass(frozen=True, slots=True)
class HeldBadge:
    badge: badges.Badge
    since: datetime


@dataclass(frozen=True, slots=True)
class Activity:
    when: datetime
    kind: str  # asked | answered | accepted
    question: Question


@dataclass(frozen=True, slots=True)
class Profile:
    member_id: int
    name: str
    title: str  # msgid, "" for none
    since: datetime
    points: int
    pending: int  # held points: earned, spendable once the hold ends (anti-gaming)
    lifetime: int
    accepted_answers: int
    answers: int
    badges: list[HeldBadge]
    recent: list[Activity]


async def profile_of(member_id: int, gettext: Gettext) -> Profile | None:
    member = await Member.get_or_none(id=member_id, status="active")
    if member is None:
        return None
    name, title = (await names_and_titles([member_id], gettext)).get(member_id, ("", ""))
    bal = await ledger.balance_of(member_id)
    held = await MemberBadge.filter(member_id=member_id).order_by("created_at", "id")
    answers = (
        await Answer.filter(member_id=member_id, status="visible")
        .select_related("question")
        .order_by("-created_at")
        .limit(RECENT)
    )
    asked = (
        await Question.filter(member_id=member_id, status__in=("open", "accepted", "ticketed"))
        .order_by("-created_at")
        .limit(RECENT)
    )
    recent = [Activity(a.created_at, "accepted" if a.accepted else "answered", a.question) for a in answers]
    recent += [Activity(q.created_at, "asked", q) for q in asked]
    recent.sort(key=lambda a: a.when, reverse=True)
    return Profile(
        member_id=member_id,
        name=name,
        title=title,
        since=member.created_at,
        points=bal.balance,
        pending=bal.held,
        lifetime=bal.lifetime,
        accepted_answers=await Answer.filter(member_id=member_id, accepted=True, status="visible").count(),
        answers=await Answer.filter(member_id=member_id, status="visible").count(),
        badges=[HeldBadge(badges.BY_CODE[b.code], b.created_at) for b in held if b.code in badges.BY_CODE],
        recent=recent[:RECENT],
    )


@dataclass(frozen=True, slots=True)
class BadgeEntry:
    badge: badges.Badge
    how: str  # msgid
    holders: int
    recent_holders: list[tuple[int, str]]  # (member id, name), latest first


async def badge_catalogue(gettext: Gettext, shown_holders: int = 5) -> list[BadgeEntry]:
    out: list[BadgeEntry] = []
    for badge in badges.BADGES:
        rows = cast(  # tortoise types flat=True as tuples
            list[int],
            await MemberBadge.filter(code=badge.code)
            .order_by("-created_at")
            .limit(shown_holders)
            .values_list("member_id", flat=True),
        )
        names = await names_and_titles(list(rows), gettext)
        out.append(
            BadgeEntry(
                badge=badge,
                how=HOW_TO_EARN.get(badge.metric, ""),
                holders=await MemberBadge.filter(code=badge.code).count(),
                recent_holders=[(mid, names[mid][0]) for mid in rows if mid in names],
            )
        )
    return out
