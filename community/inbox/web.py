"""The agent inbox pages: queue, ticket view, actions, and live updates (SSE)."""

from __future__ import annotations

import asyncio
import secrets
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from aiohttp import web
from tortoise.exceptions import IntegrityError

from bot.core.app_keys import SERVICES
from bot.core.identity.names import mask_phone
from bot.staff import audit
from bot.staff.auth import require_role
from bot.staff.models import StaffUser
from bot.core.i18n import N_
from bot.web import bad_request, render, request_locale
from bot.web import sse as sse_stream
from bot.web.lookup import object_or_404, path_id
from community.inbox import events, service
from community.inbox.models import HOTLINE_NONCE, Ticket, TicketMessage
from community.inbox import queue as ticket_queue
from community.inbox import report as inbox_report
from community.inbox.models import STATUSES
from community.inbox.view import CANNED_LIMIT, canned_replies, minutes_left, ticket_messages, ticket_view
from community.members import tags as member_tags
from community.models import KnowledgeItem
from community.qa.models import Question
from gamification.service import GAMIFICATION

TEMPLATES = Path(__file__).parent / "templates"
AGENTS = ("agent",)  # a supervisor is an agent too; admin passes every role check
SUPERVISORS = ("supervisor",)  # assign and re-assign tickets, read the per-agent reports
MAX_REPLY = 4000


def _ticket_id(request: web.Request) -> int:
    return path_id(request, "ticket_id", "ticket")


async def _ticket(request: web.Request) -> Ticket:
    return await object_or_404(Ticket, request, "ticket_id", "ticket", "member", "assignee")


def _back(ticket_id: int, flash: str = "") -> web.HTTPSeeOther:
    return web.HTTPSeeOther(f"/inbox/t/{ticket_id}" + (f"?flash={flash}" if flash else ""))


def _rows(tickets: list[Ticket]) -> list[dict[str, Any]]:
    now = datetime.now(timezone.utc)
    return [
        {
            "t": t,
            "breached": service.sla_breached(t, now),
            "first_left": None if t.first_response_at else minutes_left(t.first_response_due, now),
            "resolution_left": minutes_left(t.resolution_due, now),
            "age": int((now - t.created_at).total_seconds() // 60),
        }
        for t in tickets
    ]


def _page_no(request: web.Request) -> int:
    raw = request.query.get("page", "1")
    return int(raw) if raw.isascii() and raw.isdigit() and 0 < len(raw) <= 6 else 1


async def _queue(request: web.Request) -> tuple[ticket_queue.QueuePage, list[dict[str, Any]]]:
    f = ticket_queue.QueueFilter.from_query(request.query, me=request["staff"].id)
    result = await ticket_queue.page(f, _page_no(request))
    return result, _rows(result.tickets)


def _agents(staff_list: list[StaffUser]) -> list[StaffUser]:
    return [a for a in staff_list if a.has_role(*AGENTS)]


def _supervises(staff: StaffUser) -> bool:
    """Supervisors and admins assign tickets and may act on any ticket."""
    return staff.has_role(*SUPERVISORS)


@require_role(*AGENTS)
async def queue_page(request: web.Request) -> web.Response:
    result, rows = await _queue(request)
    channels = sorted(await Ticket.all().distinct().values_list("channel", flat=True))
    agents = _agents(await StaffUser.filter(active=True).order_by("username"))
    return render(
        request,
        "inbox_queue.html",
        staff=request["staff"],
        csrf_token=request["csrf_token"],
        rows=rows,
        q=result,
        channels=channels,
        agents=agents,
        statuses=("live", *STATUSES, "all"),
        supervises=_supervises(request["staff"]),
        query=dict(request.query),
        flash=request.query.get("flash", ""),
    )


@require_role(*AGENTS)
async def queue_fragment(request: web.Request) -> web.Response:
    result, rows = await _queue(request)
    return render(
        request, "inbox_queue_rows.html", staff=request["staff"], csrf_token=request["csrf_token"], rows=rows, q=result
    )


@require_role(*AGENTS)
async def ticket_page(request: web.Request) -> web.Response:
    ticket = await _ticket(request)
    services = request.app[SERVICES]
    view = await ticket_view(
        services, request.app[GAMIFICATION], ticket, services.translator.bind(request_locale(request))
    )
    staff = request["staff"]
    supervises = _supervises(staff)
    agents = await StaffUser.filter(active=True).order_by("username") if supervises else []
    member = view.member
    return render(
        request,
        "inbox_ticket.html",
        staff=staff,
        csrf_token=request["csrf_token"],
        v=view,
        messages=view.messages,
        ticket=ticket,
        supervises=supervises,
        agents=_agents(agents),
        nonce=secrets.token_urlsafe(16),
        verified_phone=mask_phone(member.phone) if member.phone and member.phone_verified_at else "",
        hotline_phone=mask_phone(ticket.hotline_phone) if ticket.hotline_phone else "",
        hotline_by=await _hotline_by(ticket),
        flash=request.query.get("flash", ""),
    )


async def _hotline_by(ticket: Ticket) -> str:
    """Who handed the ticket to the hotline (the staff on its hand-off message)."""
    if ticket.hotline_at is None:
        return ""
    msg = await TicketMessage.get_or_none(nonce=HOTLINE_NONCE % ticket.id).select_related("staff")
    return (msg.staff.display_name or msg.staff.username) if msg and msg.staff else ""


@require_role(*AGENTS)
async def messages_fragment(request: web.Request) -> web.Response:
    ticket = await _ticket(request)
    messages = await ticket_messages(ticket.id)
    return render(
        request,
        "inbox_messages.html",
        messages=messages,
        ticket=ticket,
        staff=request["staff"],
        csrf_token=request["csrf_token"],
    )


@require_role(*AGENTS)
async def claim(request: web.Request) -> web.Response:
    tid = _ticket_id(request)
    ok = await service.claim(request.app[SERVICES], tid, request["staff"].id)
    await audit.record(request, "ticket.claim", "ticket", tid, ok=ok)
    raise _back(tid, "" if ok else "taken")


@require_role(*AGENTS)
async def release(request: web.Request) -> web.Response:
    tid = _ticket_id(request)
    await service.release(request.app[SERVICES], tid, request["staff"].id)
    await audit.record(request, "ticket.release", "ticket", tid)
    raise web.HTTPSeeOther("/inbox")


@require_role(*SUPERVISORS)
async def assign(request: web.Request) -> web.Response:
    tid = _ticket_id(request)
    form = await request.post()
    to = str(form.get("staff_id", ""))
    expected = str(form.get("expected", ""))
    if not to.isdigit() or not await StaffUser.filter(id=int(to), active=True).exists():
        raise bad_request(request, N_("Choose an agent."))
    ok = await service.assign(
        request.app[SERVICES], tid, int(to), expected_assignee=int(expected) if expected.isdigit() else None
    )
    await audit.record(request, "ticket.assign", "ticket", tid, to_staff=int(to), ok=ok)
    raise _back(tid, "" if ok else "changed")


@require_role(*AGENTS)
async def reply(request: web.Request) -> web.Response:
    ticket = await _ticket(request)
    form = await request.post()
    text = str(form.get("text", "")).strip()
    nonce = str(form.get("nonce", ""))[:64]
    if not text or len(text) > MAX_REPLY:
        raise bad_request(request, N_("The reply must have 1 to %(n)s characters."), n=MAX_REPLY)
    if len(nonce) < 8:
        raise bad_request(request, N_("Reload the page and send again."))
    try:
        sent = await service.agent_reply(request.app[SERVICES], ticket, request["staff"].id, text, nonce)
    except service.ReplyRefused:
        raise _back(ticket.id, "refused") from None
    await audit.record(request, "ticket.reply", "ticket", ticket.id, member=ticket.member_id, chars=len(text))
    raise _back(ticket.id, "" if sent.delivered else "unreachable")


@require_role(*AGENTS)
async def hotline(request: web.Request) -> web.Response:
    """Hand the ticket to the phone hotline (转热线), once; the member is told in their language."""
    ticket = await _ticket(request)
    form = await request.post()
    staff = request["staff"]

    async def act() -> service.HandOff:
        result = await service.hand_off_to_hotline(
            request.app[SERVICES],
            ticket,
            staff.id,
            phone=str(form.get("phone", ""))[:64],
            note=str(form.get("note", "")),
            any_ticket=_supervises(staff),
        )
        if result.done:
            await audit.record(
                request,
                "ticket.hotline",
                "ticket",
                ticket.id,
                member=ticket.member_id,
                phone=mask_phone(result.phone) if result.phone else "",
                delivered=result.delivered,
            )
        return result

    try:  # shielded: the agent's page may reload on the hand-off's own event before the answer
        result = await asyncio.shield(act())
    except service.BadPhone:
        raise bad_request(request, N_("The call-back number must be a phone number (digits, an optional +).")) from None
    except service.HandOffRefused:
        raise _back(ticket.id, "refused") from None
    if result.done:
        raise _back(ticket.id, "hotline" if result.delivered else "unreachable")
    raise _back(ticket.id, "already-hotline")


async def _answered_by(request: web.Request, form: Any) -> int | None:
    """The optional "answered by knowledge item #id" of the close form, checked before closing
    so that a bad id changes nothing."""
    raw = str(form.get("kb_item", "")).strip().lstrip("#").strip()
    if not raw:
        return None
    if not (raw.isascii() and raw.isdigit() and len(raw) <= 9) or not await KnowledgeItem.exists(
        id=int(raw), status="published"
    ):
        raise bad_request(
            request,
            N_("The knowledge item must be the number of a published item (leave it empty to close without one)."),
        )
    if not await service.ticket_question(await _ticket(request)):
        raise bad_request(
            request, N_("This ticket has no question from the member to learn from; close it without a knowledge item.")
        )
    return int(raw)


@require_role(*AGENTS)
async def close(request: web.Request) -> web.Response:
    tid = _ticket_id(request)
    staff = request["staff"]
    item_id = await _answered_by(request, await request.post())
    ok = await service.close(request.app[SERVICES], tid, staff.id, admin=staff.has_role("admin"), answered_by=item_id)
    await audit.record(request, "ticket.close", "ticket", tid, ok=ok, answered_by=item_id)
    raise _back(tid, ("answered" if item_id else "") if ok else "refused")


@require_role(*AGENTS)
async def publish(request: web.Request) -> web.Response:
    """Turn a good agent reply into a draft knowledge item for reviewers."""
    ticket = await _ticket(request)
    form = await request.post()
    raw = str(form.get("message_id", ""))
    msg = await TicketMessage.get_or_none(id=int(raw), ticket_id=ticket.id, author="agent") if raw.isdigit() else None
    if msg is None:
        raise bad_request(request, N_("Choose one of your replies on this ticket."))
    question = await Question.get_or_none(id=ticket.question_id) if ticket.question_id else None
    title = str(form.get("title", "")).strip() or (question.text if question else ticket.summary) or msg.text
    try:
        await KnowledgeItem.create(
            key=f"agent-reply-{msg.id}",
            locale=ticket.member.locale,
            title=title[:255],
            variants=[],
            answer=msg.text,
            category=question.category if question else "",
            status="draft",
            tags=["from-agent", f"ticket:{ticket.id}"],
        )
    except IntegrityError:
        raise _back(ticket.id, "already-drafted") from None
    await audit.record(request, "ticket.publish", "ticket", ticket.id, message=msg.id)
    raise _back(ticket.id, "drafted")


@require_role(*AGENTS)
async def change_tag(request: web.Request) -> web.Response:
    """Add or remove one of the member's tags from the ticket page (audited)."""
    ticket = await _ticket(request)
    form = await request.post()
    op = str(form.get("op", "add"))
    if op not in ("add", "remove"):
        raise bad_request(request, N_("Unknown operation."))
    try:
        await member_tags.change_tag(
            ticket.member_id,
            str(form.get("tag", "")),
            add=op == "add",
            actor=f"staff:{request['staff'].username}",
            source="inbox",
        )
    except member_tags.TagError:
        raise _back(ticket.id, "bad-tag") from None
    await service.reprioritize(request.app[SERVICES], ticket.member_id)
    raise _back(ticket.id, "tagged")


@require_role(*AGENTS)
async def canned(request: web.Request) -> web.Response:
    """Knowledge items for a canned reply, searched by the agent's own words."""
    text = request.query.get("q", "").strip()[:200]
    items = (
        await canned_replies(request.app[SERVICES], text, request_locale(request), limit=CANNED_LIMIT * 2)
        if text
        else []
    )
    return render(request, "inbox_canned.html", items=items, q=text)


@require_role(*SUPERVISORS)
async def report_page(request: web.Request) -> web.Response:
    raw = request.query.get("days", "30")
    days = int(raw) if raw.isascii() and raw.isdigit() and 0 < int(raw) <= 366 else 30
    return render(
        request,
        "inbox_report.html",
        staff=request["staff"],
        csrf_token=request["csrf_token"],
        rows=await inbox_report.agent_report(days),
        days=days,
    )


@require_role(*AGENTS)
async def sse(request: web.Request) -> web.StreamResponse:
    """Server-sent events: one ``data:`` line per inbox change; pages re-fetch what changed."""
    return await sse_stream.serve(request, events.subscribe(request.app[SERVICES]))


def add_routes(app: web.Application) -> None:
    sse_stream.install(app)
    app.router.add_get("/inbox", queue_page)
    app.router.add_get("/inbox/queue", queue_fragment)
    app.router.add_get("/inbox/events", sse)
    app.router.add_get("/inbox/canned", canned)
    app.router.add_get("/inbox/report", report_page)
    app.router.add_get("/inbox/t/{ticket_id}", ticket_page)
    app.router.add_get("/inbox/t/{ticket_id}/messages", messages_fragment)
    app.router.add_post("/inbox/t/{ticket_id}/claim", claim)
    app.router.add_post("/inbox/t/{ticket_id}/release", release)
    app.router.add_post("/inbox/t/{ticket_id}/assign", assign)
    app.router.add_post("/inbox/t/{ticket_id}/reply", reply)
    app.router.add_post("/inbox/t/{ticket_id}/close", close)
    app.router.add_post("/inbox/t/{ticket_id}/publish", publish)
    app.router.add_post("/inbox/t/{ticket_id}/tags", change_tag)
    app.router.add_post("/inbox/t/{ticket_id}/hotline", hotline)
