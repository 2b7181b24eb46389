"""/admin/knowledge: list, search, edit, diff, approve/reject with a reason, retire,
candidate variants and "knowledge wanted".

Agents (and reviewers) read and write drafts; only reviewers (admin passes every check)
approve, reject, retire, mark notices and accept learned variants.

A member's contribution (its version) and a learned variant are review-queue kinds: deciding
them here goes through ``community.review.service`` like ``/staff/review`` (one claim, one
audit, "already decided" as 409). Staff's own edits are not queue items and are decided by
the knowledge workflow directly.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from aiohttp import web
from tortoise.expressions import Q

from bot.core.app_keys import SERVICES
from bot.web.csvexport import csv_response
from bot.web.urls import safe_local_path
from bot.core.i18n import N_
from bot.core.settings import Settings
from bot.staff import audit
from bot.staff.auth import require_role
from bot.web import add_staff_link, add_template_dir, bad_request, render, staff_text
from bot.web.lookup import object_or_404
from community.knowledge_admin import service, wanted, weak
from community.knowledge_admin.models import CandidateVariant, KnowledgeVersion
from community.models import STATUSES, KnowledgeItem
from community.review import service as review
from community.review.models import Kind

TEMPLATES = Path(__file__).parent / "templates"
WRITERS = ("agent", "reviewer")
REVIEWERS = ("reviewer",)
PAGE = 100


def _back_to_referer(request: web.Request, default: str) -> str:
    """The page the form was on, when it is a page of this site; never another site."""
    ref = urlsplit(request.headers.get("Referer", ""))
    if ref.netloc and ref.netloc != request.host:
        return default
    return safe_local_path(ref.path + (f"?{ref.query}" if ref.query else ""), default)


def _refused(request: web.Request, exc: review.ReviewError) -> web.Response:
    """The queue's refusal (already decided: 409, a missing reason: 400) as these pages say
    errors: plain text in the reader's language."""
    return web.Response(status=exc.status, text=staff_text(request, exc.msgid, **exc.params))


def _ctx(request: web.Request, **kw: Any) -> dict[str, Any]:
    return {"staff": request["staff"], "csrf_token": request["csrf_token"], **kw}


def _form_data(request: web.Request, form: Any) -> dict[str, Any]:
    title = str(form.get("title", "")).strip()[:255]
    answer = str(form.get("answer", "")).strip()
    if not title or not answer:
        raise bad_request(request, N_("Title and answer are required."))
    locale = str(form.get("locale", "zh_CN"))
    if locale not in ("zh_CN", "zh_TW", "en"):
        raise bad_request(request, N_("Unknown locale."))
    try:
        difficulty = min(5, max(1, int(form.get("difficulty", 1) or 1)))
    except ValueError:
        raise bad_request(request, N_("Difficulty must be 1-5.")) from None
    code = str(form.get("sms_code", "")).strip().upper() or None
    if code and not (code.isascii() and code.isalnum() and len(code) <= 16):
        raise bad_request(request, N_("SMS code must be letters and digits."))
    return {
        "title": title,
        "answer": answer[:20000],
        "locale": locale,
        "difficulty": difficulty,
        "sms_code": code,
        "category": str(form.get("category", "")).strip()[:32],
        "variants": [v.strip()[:255] for v in str(form.get("variants", "")).splitlines() if v.strip()][:100],
        "tags": [t.strip() for t in re.split(r"[,，]", str(form.get("tags", ""))) if t.strip()][:20],
    }


@require_role(*WRITERS)
async def item_list(request: web.Request) -> web.Response:
    q = request.query.get("q", "").strip()
    status = request.query.get("status", "")
    qs = KnowledgeItem.all()
    if status in STATUSES:
        qs = qs.filter(status=status)
    if q:
        qs = qs.filter(Q(title__icontains=q) | Q(answer__icontains=q) | Q(key__icontains=q))
    items = await qs.order_by("-updated_at").limit(PAGE)
    pending = await KnowledgeVersion.filter(state="pending").order_by("created_at").prefetch_related("item").limit(PAGE)
    notices = await service.notices(10)
    kb = request.app[SERVICES].kb
    return render(
        request,
        "knowledge_list.html",
        **_ctx(
            request,
            items=items,
            q=q,
            status_filter=status,
            statuses=STATUSES,
            pending=pending,
            notices=notices,
            can_review=service.can_approve(request["staff"]),
            calibration=list(kb.calibration.values()),
            self_calibrate=kb.self_calibrate,
            thresholds=kb.matcher.config.thresholds(False)[0],
        ),
    )


@require_role(*WRITERS)
async def item_new(request: web.Request) -> web.Response:
    if request.method == "POST":
        form = await request.post()
        data = _form_data(request, form)
        key = str(form.get("key", "")).strip()
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_.-]{0,95}", key):
            raise bad_request(request, N_("Key: letters, digits, _ . - only."))
        if await KnowledgeItem.exists(key=key, locale=data["locale"]):
            raise bad_request(request, N_("An item with this key and locale exists."))
        item, _v = await service.create_item(
            key,
            data,
            service.author_of(request["staff"]),
            submit=bool(form.get("submit")),
            reason=str(form.get("reason", "")),
        )
        await audit.record(request, "knowledge.create", "item", item.id, key=key, submit=bool(form.get("submit")))
        raise web.HTTPFound(f"/admin/knowledge/{item.id}")
    return render(
        request,
        "knowledge_edit.html",
        **_ctx(request, item=None, versions=[], candidates=[], can_review=service.can_approve(request["staff"])),
    )


async def _item(request: web.Request) -> KnowledgeItem:
    return await object_or_404(KnowledgeItem, request, "item_id", "item")


@require_role(*WRITERS)
async def item_edit(request: web.Request) -> web.Response:
    item = await _item(request)
    if request.method == "POST":
        form = await request.post()
        try:
            await service.propose(
                item,
                _form_data(request, form),
                service.author_of(request["staff"]),
                submit=bool(form.get("submit")),
                reason=str(form.get("reason", ""))[:2000],
            )
        except service.LocaleTaken as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
        await audit.record(request, "knowledge.edit", "item", item.id, submit=bool(form.get("submit")))
        raise web.HTTPFound(f"/admin/knowledge/{item.id}")
    versions = await KnowledgeVersion.filter(item_id=item.id).order_by("-number")
    candidates = await CandidateVariant.filter(item_id=item.id, status="candidate").order_by("-updated_at")
    return render(
        request,
        "knowledge_edit.html",
        **_ctx(
            request,
            item=item,
            versions=versions,
            candidates=candidates,
            can_review=service.can_approve(request["staff"]),
        ),
    )


@require_role(*WRITERS)
async def item_diff(request: web.Request) -> web.Response:
    item = await _item(request)
    try:
        a, b = int(request.query.get("a", "0")), int(request.query.get("b", "0"))
    except ValueError:
        raise bad_request(request, N_("a and b are version numbers.")) from None
    va = await KnowledgeVersion.get_or_none(item_id=item.id, number=a)
    vb = await KnowledgeVersion.get_or_none(item_id=item.id, number=b)
    if va is None or vb is None:
        raise web.HTTPNotFound(text="No such version.")
    return render(request, "knowledge_diff.html", **_ctx(request, item=item, a=va, b=vb, lines=service.diff(va, vb)))


async def _version(request: web.Request) -> KnowledgeVersion:
    return await object_or_404(KnowledgeVersion, request, "version_id", "version")


@require_role(*REVIEWERS)
async def version_decide(request: web.Request) -> web.Response:
    v = await _version(request)
    form = await request.post()
    reason = str(form.get("reason", "")).strip()[:2000]
    verdict = request.match_info["verdict"]
    services = request.app[SERVICES]
    if v.contribution_id is not None:  # a member's contribution (its one version): a queue item
        try:
            await review.decide_target(
                Kind.CONTRIBUTION, v.contribution_id, verdict, request["staff"], reason, services=services
            )
        except review.ReviewError as exc:
            return _refused(request, exc)
    else:  # a staff edit: the knowledge workflow alone
        try:
            if verdict == "approve":
                await service.approve(v, request["staff"], reason, services=services)
            else:
                await service.reject(v, request["staff"], reason, services=services)
        except service.BadState as exc:
            raise web.HTTPConflict(text=str(exc)) from None
        except ValueError as exc:
            raise web.HTTPBadRequest(text=str(exc)) from None
    await audit.record(request, f"knowledge.{verdict}", "version", v.id, item=v.item_id, reason=reason[:200])
    raise web.HTTPFound(f"/admin/knowledge/{v.item_id}")


@require_role(*REVIEWERS)
async def item_retire(request: web.Request) -> web.Response:
    item = await _item(request)
    reason = str((await request.post()).get("reason", "")).strip()[:2000]
    try:
        await service.retire(item, request["staff"], reason, kb=request.app[SERVICES].kb)
    except ValueError:
        raise bad_request(request, N_("Retiring needs a reason.")) from None
    await audit.record(request, "knowledge.retire", "item", item.id, reason=reason[:200])
    raise web.HTTPFound(f"/admin/knowledge/{item.id}")


@require_role(*REVIEWERS)
async def item_notice(request: web.Request) -> web.Response:
    item = await _item(request)
    item.is_notice = (await request.post()).get("notice") == "1"
    await item.save(update_fields=["is_notice", "updated_at"])
    await audit.record(request, "knowledge.notice", "item", item.id, notice=item.is_notice)
    raise web.HTTPFound(f"/admin/knowledge/{item.id}")


@require_role(*WRITERS)
async def candidates(request: web.Request) -> web.Response:
    rows = await CandidateVariant.filter(status="candidate").order_by("-updated_at").limit(PAGE * 2)
    titles = dict(await KnowledgeItem.filter(id__in=[r.item_id for r in rows]).values_list("id", "title"))
    return render(
        request,
        "knowledge_candidates.html",
        **_ctx(request, rows=rows, titles=titles, can_review=service.can_approve(request["staff"])),
    )


@require_role(*REVIEWERS)
async def candidate_decide(request: web.Request) -> web.Response:
    cv = await object_or_404(CandidateVariant, request, "cand_id", "candidate")
    try:
        await review.decide_target(
            Kind.CANDIDATE_VARIANT,
            cv.id,
            "approve" if request.match_info["verdict"] == "accept" else "reject",
            request["staff"],
            services=request.app[SERVICES],
        )
    except review.ReviewError as exc:
        return _refused(request, exc)
    await audit.record(
        request, f"knowledge.variant_{request.match_info['verdict']}", "item", cv.item_id, candidate=cv.id
    )
    raise web.HTTPFound(_back_to_referer(request, "/admin/knowledge/candidates"))


@require_role(*WRITERS)
async def wanted_page(request: web.Request) -> web.Response:
    return render(
        request,
        "knowledge_wanted.html",
        **_ctx(request, clusters=await wanted.knowledge_wanted(), can_review=service.can_approve(request["staff"])),
    )


@require_role(*REVIEWERS)
async def wanted_resolve(request: web.Request) -> web.Response:
    """Mark one cluster's questions (the ids the page showed) as dealt with."""
    form = await request.post()
    try:
        ids = wanted.parse_ids(str(form.get("ids", "")))
    except ValueError as exc:
        raise web.HTTPBadRequest(text=str(exc)) from None
    await wanted.resolve(ids)
    await audit.record(request, "knowledge.wanted_resolve", "question", "", questions=list(ids)[:100])
    raise web.HTTPFound("/admin/knowledge/wanted")


@require_role(*REVIEWERS)
async def weak_page(request: web.Request) -> web.StreamResponse:
    """Items members vote down or the bot answers with little confidence; ?format=csv downloads."""
    days = weak.window_days(request.query.get("days"))
    threshold = request.app[SERVICES].kb.matcher.config.answer_threshold
    as_csv = request.query.get("format") == "csv"
    report = await weak.collect(days, threshold, limit=None if as_csv else PAGE * 2)
    if as_csv:
        return csv_response(f"knowledge-weak-{days}d.csv", weak.CSV_HEADER, weak.csv_rows(report))
    return render(request, "knowledge_weak.html", **_ctx(request, report=report, days=days))


def setup(app: web.Application, settings: Settings) -> None:
    add_template_dir(app, TEMPLATES)
    r = app.router
    r.add_get("/admin/knowledge", item_list)
    r.add_route("*", "/admin/knowledge/new", item_new)
    r.add_get("/admin/knowledge/candidates", candidates)
    r.add_post(r"/admin/knowledge/candidates/{cand_id:\d+}/{verdict:accept|reject}", candidate_decide)
    r.add_get("/admin/knowledge/wanted", wanted_page)
    r.add_post("/admin/knowledge/wanted/resolve", wanted_resolve)
    r.add_get("/admin/knowledge/weak", weak_page)
    r.add_route("*", r"/admin/knowledge/{item_id:\d+}", item_edit)
    r.add_get(r"/admin/knowledge/{item_id:\d+}/diff", item_diff)
    r.add_post(r"/admin/knowledge/{item_id:\d+}/retire", item_retire)
    r.add_post(r"/admin/knowledge/{item_id:\d+}/notice", item_notice)
    r.add_post(r"/admin/knowledge/versions/{version_id:\d+}/{verdict:approve|reject}", version_decide)
    add_staff_link(app, "/admin/knowledge", N_("Knowledge base"), WRITERS)
