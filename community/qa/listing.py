"""The public question list: which questions, in which order, filtered and searched in SQL."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from tortoise.expressions import Q
from tortoise.functions import Count

from community.qa.models import Question

Show = Literal["open", "answered", "accepted", "all"]
Sort = Literal["newest", "unanswered"]
SHOWS: tuple[Show, ...] = ("open", "answered", "accepted", "all")
SORTS: tuple[Sort, ...] = ("unanswered", "newest")
PUBLIC = ("open", "accepted", "ticketed")  # held and rejected questions are never listed
PAGE_SIZE = 30


@dataclass(frozen=True, slots=True)
class Row:
    question: Question
    answers: int


@dataclass(frozen=True, slots=True)
class Listing:
    rows: list[Row]
    show: Show
    sort: Sort
    search: str
    page: int
    has_more: bool


def parse_show(raw: str | None) -> Show:
    return raw if raw in SHOWS else "open"  # type: ignore[return-value]


def parse_sort(raw: str | None) -> Sort:
    return raw if raw in SORTS else "unanswered"  # type: ignore[return-value]


async def list_questions(show: Show, sort: Sort, search: str = "", page: int = 1) -> Listing:
    """Open = waiting and nobody answered yet; answered = waiting with answers; accepted =
    solved. "Unanswered first" puts questions without a visible answer on top, newest first
    within each group, so a helper sees where help is needed."""
    query = Question.filter(status__in=PUBLIC).annotate(visible=Count("answers", _filter=Q(answers__status="visible")))
    if show == "accepted":
        query = query.filter(status="accepted")
    elif show in ("open", "answered"):
        query = query.filter(status="open")
        query = query.filter(visible=0) if show == "open" else query.filter(visible__gt=0)
    search = search.strip()[:100]
    if search:
        query = query.filter(text__icontains=search)
    order = ("visible", "-created_at", "-id") if sort == "unanswered" else ("-created_at", "-id")
    page = max(1, page)
    found = await query.order_by(*order).offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE + 1)
    rows = [Row(q, int(q.visible)) for q in found[:PAGE_SIZE]]  # type: ignore[attr-defined]
    return Listing(rows, show, sort, search, page, has_more=len(found) > PAGE_SIZE)
