"""Gamification pages and endpoints.

- ``GET /leaderboard`` — public board (weekly / monthly / all-time), names escaped.
- ``/f/<token>`` — forwarded answers, in :mod:`gamification.forward_pages` (registered here).
- ``POST /api/v1/topup/callback`` — the top-up provider's signed outcome.
- ``/admin/rewards`` — admins manage the catalogue, the manual fulfilment queue and review flags.

Review flags and orders in the manual queue are review-queue items: deciding them here goes
through the one decision path, the review queue (``community.review``), which gamification
does not import (docs/architecture.md): the assembly passes it as :class:`StaffDecisions`.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import web
from pydantic import BaseModel, ValidationError

from bot.core.app_keys import SERVICES
from bot.core.i18n import N_
from bot.core.settings import Settings
from bot.staff import audit
from bot.staff.auth import require_role
from bot.web import add_staff_link, add_template_dir, render, request_locale, staff_text
from bot.web.lookup import path_id
from gamification import forward_pages, rewards, topup
from gamification.leaderboard import PERIODS
from gamification.models import Redemption, ReviewFlag, Reward
from gamification.service import GAMIFICATION, Gamification, names_and_titles

if TYPE_CHECKING:
    from bot.staff.models import StaffUser

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).with_name("templates")
PERIOD_NAMES = {"week": N_("This week"), "month": N_("This month"), "all": N_("All time")}
HOUSEKEEPING_SECONDS = 3600


# --- public pages --------------------------------------------------------------------------------
async def leaderboard_page(request: web.Request) -> web.Response:
    period = request.query.get("period", "week")
    if period not in PERIODS:
        period = "week"
    st = await request.app[GAMIFICATION].standing(period, None, limit=50)
    gettext = request.app[SERVICES].translator.bind(request_locale(request))
    names = await names_and_titles([r.member_id for r in st.top], gettext)
    rows = [(r.rank, r.member_id, *names.get(r.member_id, ("", "")), r.points) for r in st.top]
    return render(request, "leaderboard.html", rows=rows, period=period, periods=PERIOD_NAMES)


# --- top-up provider callback --------------------------------------------------------------------------
class TopupCallback(BaseModel):
    order_id: str
    provider_ref: str = ""
    status: str
    reason: str = ""


async def topup_callback(request: web.Request) -> web.Response:
    settings: Settings = request.app[SERVICES].settings
    body = await request.read()
    if not topup.verify(
        settings.topup_secret, request.headers.get("X-Timestamp", ""), body, request.headers.get("X-Signature", "")
    ):
        return web.json_response({"error": "bad signature"}, status=403)
    try:
        cb = TopupCallback.model_validate(json.loads(body))
    except (ValueError, ValidationError):
        return web.json_response({"error": "malformed callback"}, status=400)
    if cb.status not in ("success", "failed") or not cb.order_id.startswith("r") or not cb.order_id[1:].isdigit():
        return web.json_response({"error": "malformed callback"}, status=400)
    redemption = await Redemption.get_or_none(id=int(cb.order_id[1:]))
    if redemption is None:
        return web.json_response({"error": "unknown order"}, status=404)
    if cb.status == "success":
        changed = await rewards.complete(redemption.id, cb.provider_ref)
    else:
        changed = await rewards.fail(redemption.id, f"provider: {cb.reason}"[:500])
    return web.json_response({"ok": True, "changed": changed})


# --- admin --------------------------------------------------------------------------------------------------
FLAG = "moderation_flag"  # the review queue's kinds this page decides
REDEMPTION = "redemption"
PROVIDER_ORDERS = ("pending", "submitted")  # with the top-up provider: not in the review queue


@dataclass(frozen=True)
class Refusal:
    """Why a decision was refused: the HTTP status (409 already decided, 404, 403, 400) and
    a message marked ``N_`` for staff."""

    status: int
    msgid: str
    params: dict[str, Any] = field(default_factory=dict)


class StaffDecisions(Protocol):
    """The one way staff approve or reject a review flag (``FLAG``) or an order in the manual
    queue (``REDEMPTION``): the review queue's decision (permission, claim, audit, the kind's
    own code: ``service.release_held``/``forfeit_held``, ``rewards.complete``/``fail``). The
    assembly passes it (``bot/app.py``), as it passes ``service.ForwardFacts``."""

    async def decide(self, kind: str, target_id: int, approve: bool, staff: "StaffUser", note: str) -> Refusal | None:
        """None when decided; otherwise why not (nothing was applied)."""
        ...


STAFF_DECISIONS: "web.AppKey[StaffDecisions]" = web.AppKey("gamification_staff_decisions")


async def _decided(request: web.Request, kind: str, target_id: int, approve: bool, note: str = "") -> Refusal | None:
    return await request.app[STAFF_DECISIONS].decide(kind, target_id, approve, request["staff"], note)


async def _refused(request: web.Request, why: Refusal) -> web.Response:
    return await _admin_page(request, error=staff_text(request, why.msgid, **why.params), status=why.status)


def _int(form: Any, name: str, default: int = 0, lo: int = 0, hi: int = 10_000_000) -> int:
    try:
        value = int(str(form.get(name, default)).strip())
    except ValueError as exc:
        raise web.HTTPBadRequest(text=f"{name} must be a whole number.") from exc
    if not lo <= value <= hi:
        raise web.HTTPBadRequest(text=f"{name} must be between {lo} and {hi}.")
    return value


async def _admin_page(request: web.Request, error: str = "", status: int = 200) -> web.Response:
    return render(
        request,
        "rewards_admin.html",
        status=status,
        staff=request["staff"],
        csrf_token=request["csrf_token"],
        rewards=await Reward.all().order_by("id"),
        queue=await Redemption.filter(status__in=("queued", "pending", "submitted"))
        .order_by("id")
        .prefetch_related("reward", "member")
        .limit(200),
        flags=await ReviewFlag.filter(status="open").order_by("id").prefetch_related("member").limit(200),
        kinds=rewards.KINDS,
        error=error,
    )


@require_role("admin")
async def rewards_admin(request: web.Request) -> web.Response:
    return await _admin_page(request)


@require_role("admin")
async def reward_save(request: web.Request) -> web.Response:
    form = await request.post()
    name = str(form.get("name", "")).strip()[:128]
    kind = str(form.get("kind", ""))
    if not name or kind not in rewards.KINDS:
        return await _admin_page(request, error="Give the reward a name and a kind.", status=400)
    values: dict[str, Any] = {
        "name": name,
        "kind": kind,
        "cost": _int(form, "cost", lo=1),
        "stock": _int(form, "stock"),
        "per_member_limit": _int(form, "per_member_limit", 1, lo=1),
        "face_value": _int(form, "face_value"),
        "active": form.get("active") == "on",
    }
    if "reward_id" in request.match_info:
        reward_id = path_id(request, "reward_id", "reward")
        if not await Reward.filter(id=reward_id).update(**values):
            raise web.HTTPNotFound(text="No such reward.")
    else:
        reward_id = (await Reward.create(**values)).id
    await audit.record(request, "reward.save", "reward", reward_id, **values)
    raise web.HTTPSeeOther("/admin/rewards")


@require_role("admin")
async def redemption_action(request: web.Request) -> web.Response:
    form = await request.post()
    rid = path_id(request, "redemption_id", "redemption")
    action = str(form.get("action", ""))
    if action not in ("fulfilled", "failed"):
        raise web.HTTPBadRequest(text="Unknown action.")
    ref, note = str(form.get("ref", ""))[:128], str(form.get("note", ""))[:300]
    order = await Redemption.get_or_none(id=rid)
    if order is not None and order.status in PROVIDER_ORDERS:
        # an order still with the provider is no review item: staff settle it directly (if it
        # moved to the manual queue meanwhile, the queue closes its review when read)
        if action == "fulfilled":
            await rewards.complete(rid, ref)
        else:
            await rewards.fail(rid, f"staff {request['staff'].username}: {note}")
    elif why := await _decided(request, REDEMPTION, rid, action == "fulfilled", ref if action == "fulfilled" else note):
        return await _refused(request, why)
    await audit.record(request, f"redemption.{action}", "redemption", rid)
    raise web.HTTPSeeOther("/admin/rewards")


@require_role("admin")
async def flag_action(request: web.Request) -> web.Response:
    form = await request.post()
    fid = path_id(request, "flag_id", "flag")
    action = str(form.get("action", ""))
    if action not in ("cleared", "confirmed"):
        raise web.HTTPBadRequest(text="Unknown action.")
    # clearing releases what the flag held; confirming a ring or farm forfeits it
    if why := await _decided(request, FLAG, fid, action == "cleared"):
        return await _refused(request, why)
    flag = await ReviewFlag.get(id=fid)
    await audit.record(request, f"flag.{action}", "member", flag.member_id, flag=fid)
    raise web.HTTPSeeOther("/admin/rewards")


# --- lifecycle -----------------------------------------------------------------------------------------------
async def _housekeeping_ctx(app: web.Application) -> AsyncIterator[None]:
    """The hourly housekeeping while the app runs, then the instance's background work is
    waited for. The instance itself (board, provider, facts) is built by the assembly,
    ``bot/subscriptions.py``, and kept under :data:`GAMIFICATION`; nothing here builds it."""
    gamification = app[GAMIFICATION]
    loop = asyncio.create_task(_housekeeping(gamification))
    try:
        yield
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await gamification.close()


async def _housekeeping(gamification: Gamification) -> None:
    """Hourly: resubmit top-ups left pending by transient errors (bounded, with backoff) and
    settle orders whose callback is overdue (rewards.reconcile), pay out pending points whose
    hold has passed, expire old points."""
    while True:
        await asyncio.sleep(HOUSEKEEPING_SECONDS)
        try:
            await gamification.reconcile_rewards()  # retries, timeouts
            await gamification.release_due()
            await gamification.run_expiry()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("gamification housekeeping failed")


def setup(app: web.Application, settings: Settings) -> None:
    add_template_dir(app, TEMPLATES)
    app.router.add_get("/leaderboard", leaderboard_page)
    forward_pages.setup(app)
    app.router.add_post("/api/v1/topup/callback", topup_callback)
    app.router.add_get("/admin/rewards", rewards_admin)
    app.router.add_post("/admin/rewards", reward_save)
    app.router.add_post(r"/admin/rewards/{reward_id:\d+}", reward_save)
    app.router.add_post(r"/admin/redemptions/{redemption_id:\d+}", redemption_action)
    app.router.add_post(r"/admin/flags/{flag_id:\d+}", flag_action)
    app.cleanup_ctx.append(_housekeeping_ctx)
    add_staff_link(app, "/admin/rewards", N_("Rewards and points review"), ("admin",))
    add_staff_link(app, "/leaderboard", N_("Leaderboard"))
