"""Gamification pages and endpoints.

- ``GET /leaderboard`` — public board (weekly / monthly / all-time), names escaped.
- ``GET /f/<token>`` — a forwarded item: records the engagement of a new distinct visitor
  and shows the item with 准确/不准确 buttons; ``POST /f/<token>/rate`` stores the verdict.
  A visitor is the member when known (an SMS forward's recipient, a web chat session), else
  their device (address + browser, hashed): a cleared cookie is the same visitor, and the
  sharer's own devices and accounts never pay.
- ``POST /api/v1/topup/callback`` — the top-up provider's signed outcome.
- ``/admin/rewards`` — admins manage the catalogue, the manual fulfilment queue and review flags.
"""

from __future__ import annotations

import asyncio
import json
import logging
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

from aiohttp import web
from pydantic import BaseModel, ValidationError

from bot.core.app_keys import SERVICES
from bot.core.i18n import N_
from bot.core.settings import Settings
from bot.staff import audit
from bot.staff.auth import require_role
from bot.staff.web import STAFF_LINKS
from bot.web import add_template_dir, render, request_locale
from bot.web.chat_session import session_member_id
from bot.web.client import device_fingerprint, network_fingerprint
from bot.web.lookup import path_id
from community.models import KnowledgeItem
from gamification import rewards, service, topup
from gamification.leaderboard import PERIODS, make_leaderboard
from bot.core.models import Member
from gamification.models import ForwardEngagement, ForwardLink, Redemption, ReviewFlag, Reward

log = logging.getLogger(__name__)

TEMPLATES = Path(__file__).with_name("templates")
PERIOD_NAMES = {"week": N_("This week"), "month": N_("This month"), "all": N_("All time")}
HOUSEKEEPING_SECONDS = 3600


# --- public pages --------------------------------------------------------------------------------
async def leaderboard_page(request: web.Request) -> web.Response:
    period = request.query.get("period", "week")
    if period not in PERIODS:
        period = "week"
    st = await service.standing(period, None, limit=50)
    gettext = request.app[SERVICES].translator.bind(request_locale(request))
    names = await service.names_and_titles([r.member_id for r in st.top], gettext)
    rows = [(r.rank, r.member_id, *names.get(r.member_id, ("", "")), r.points) for r in st.top]
    return render(request, "leaderboard.html", rows=rows, period=period, periods=PERIOD_NAMES)


async def _recipient_key(request: web.Request, link: ForwardLink, device: str) -> tuple[str, int | None]:
    """Who is reading: an SMS forward names its recipient, a web chat session its member;
    anyone else is their device (a cleared cookie does not make a new visitor)."""
    if link.channel == "sms" and link.target:
        from bot.core.models import ChannelAccount

        acc = await ChannelAccount.get_or_none(channel="sms", external_id=link.target)
        if acc:
            return f"m:{acc.member_id}", acc.member_id
    member_id = await session_member_id(request, request.app[SERVICES].settings)
    if member_id is not None:
        return f"m:{member_id}", member_id
    return f"d:{device}", None


async def _link_and_item(token: str) -> tuple[ForwardLink, KnowledgeItem] | None:
    if not (8 <= len(token) <= 32):
        return None
    link = await ForwardLink.get_or_none(token=token)
    item = await KnowledgeItem.get_or_none(id=link.item_id, status="published") if link else None
    return (link, item) if link and item else None


async def forwarded_page(request: web.Request) -> web.Response:
    found = await _link_and_item(request.match_info["token"])
    if found is None:
        return render(request, "forward_missing.html", status=404)
    link, item = found
    settings: Settings = request.app[SERVICES].settings
    device = device_fingerprint(request, settings.secret_key)
    key, member_id = await _recipient_key(request, link, device)
    outcome = await service.on_forward_engaged(
        link,
        key,
        recipient_member_id=member_id,
        kind="open",
        fingerprint=device,
        network=network_fingerprint(request, settings.secret_key),
    )
    engagement = outcome.engagement
    rated = False
    if engagement is not None:
        from gamification.models import ForwardRating

        rated = await ForwardRating.filter(engagement_id=engagement.id).exists()
    sharer = await Member.get_or_none(id=link.sharer_id)
    resp = render(
        request,
        "forward.html",
        item=item,
        token=link.token,
        sharer=sharer.display_name if sharer else "",
        can_rate=engagement is not None and engagement.link_id == link.id and not rated,
        rated=rated,
        thanks=request.query.get("rated") == "1",
    )
    resp.headers["Cache-Control"] = "no-store"
    return resp


async def forwarded_rate(request: web.Request) -> web.Response:
    found = await _link_and_item(request.match_info["token"])
    if found is None:
        raise web.HTTPNotFound(text="This shared answer is no longer available.")
    link, _item = found
    form = await request.post()
    verdict = str(form.get("accurate", ""))
    if verdict not in ("0", "1"):
        raise web.HTTPBadRequest(text="Choose accurate or not accurate.")
    settings: Settings = request.app[SERVICES].settings
    key, member_id = await _recipient_key(request, link, device_fingerprint(request, settings.secret_key))
    engagement = await ForwardEngagement.get_or_none(item_id=link.item_id, recipient_key=key)
    if engagement is None or engagement.link_id != link.id:
        raise web.HTTPForbidden(text="Open the shared answer first, then rate it.")
    await service.rate_forward(engagement, verdict == "1", rater_member_id=member_id)
    raise web.HTTPSeeOther(f"/f/{link.token}?rated=1")


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
    values = {
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
    if action == "fulfilled":
        await rewards.complete(rid, str(form.get("ref", ""))[:128])
    elif action == "failed":
        await rewards.fail(rid, f"staff {request['staff'].username}: {str(form.get('note', ''))[:300]}")
    else:
        raise web.HTTPBadRequest(text="Unknown action.")
    await audit.record(request, f"redemption.{action}", "redemption", rid)
    raise web.HTTPSeeOther("/admin/rewards")


@require_role("admin")
async def flag_action(request: web.Request) -> web.Response:
    form = await request.post()
    fid = path_id(request, "flag_id", "flag")
    action = str(form.get("action", ""))
    if action not in ("cleared", "confirmed"):
        raise web.HTTPBadRequest(text="Unknown action.")
    flag = await ReviewFlag.get_or_none(id=fid, status="open")
    if flag and await ReviewFlag.filter(id=fid, status="open").update(status=action):
        if action == "cleared":
            await service.release_held(flag.member_id)
        elif flag.reason in ("ring", "farm"):  # fraud confirmed: what it held never pays
            await service.forfeit_held(flag.member_id, reason=f"{flag.reason} confirmed by staff")
    if flag:
        await audit.record(request, f"flag.{action}", "member", flag.member_id, flag=fid)
    raise web.HTTPSeeOther("/admin/rewards")


# --- wiring --------------------------------------------------------------------------------------------------
def _runtime_ctx(settings: Settings):  # type: ignore[no-untyped-def]
    async def ctx(app: web.Application) -> AsyncIterator[None]:
        services = app[SERVICES]
        redis = None
        own_redis = False
        if settings.redis_url:
            redis = services.redis
            if redis is None:
                from bot.core.redis_stores import make_redis

                redis, own_redis = make_redis(settings.redis_url), True
        provider = (
            topup.HttpTopupProvider(settings.topup_api_base, settings.topup_secret) if settings.topup_api_base else None
        )
        base = (settings.public_url or f"http://{settings.host}:{settings.port}").rstrip("/")
        rt = service.configure(
            services,
            make_leaderboard(redis, prefix="everycsr:lb"),
            provider=provider,
            callback_url=f"{base}/api/v1/topup/callback",
        )
        rt.policy = rewards.policy_from(settings)
        previous = services.extras.get("on_feedback")

        async def on_feedback(hctx: Any, item_id: int, helpful: bool) -> None:
            if previous:
                await previous(hctx, item_id, helpful)
            if helpful:
                try:
                    await service.on_self_service(hctx.member.id)
                except Exception:  # points must never break feedback
                    log.exception("self-service streak failed for member %s", hctx.member.id)

        services.extras["on_feedback"] = on_feedback
        services.extras["gamification"] = rt
        loop = asyncio.create_task(_housekeeping(rt))
        try:
            yield
        finally:
            loop.cancel()
            await asyncio.gather(loop, *rt.tasks, return_exceptions=True)
            if own_redis and redis is not None:
                await redis.aclose()

    return ctx


async def _housekeeping(rt: service.Runtime) -> None:
    """Hourly: resubmit top-ups left pending by transient errors (bounded, with backoff) and
    settle orders whose callback is overdue (rewards.reconcile), pay out pending points whose
    hold has passed, expire old points."""
    while True:
        await asyncio.sleep(HOUSEKEEPING_SECONDS)
        try:
            await rewards.reconcile(rt.provider, rt.callback_url, rt.policy)  # retries, timeouts
            await service.release_due()
            await service.run_expiry()
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("gamification housekeeping failed")


def setup(app: web.Application, settings: Settings) -> None:
    add_template_dir(TEMPLATES)
    app.router.add_get("/leaderboard", leaderboard_page)
    app.router.add_get("/f/{token}", forwarded_page)
    app.router.add_post("/f/{token}/rate", forwarded_rate)
    app.router.add_post("/api/v1/topup/callback", topup_callback)
    app.router.add_get("/admin/rewards", rewards_admin)
    app.router.add_post("/admin/rewards", reward_save)
    app.router.add_post(r"/admin/rewards/{reward_id:\d+}", reward_save)
    app.router.add_post(r"/admin/redemptions/{redemption_id:\d+}", redemption_action)
    app.router.add_post(r"/admin/flags/{flag_id:\d+}", flag_action)
    app.cleanup_ctx.append(_runtime_ctx(settings))
    for entry in (
        ("/admin/rewards", N_("Rewards and points review"), ("admin",)),
        ("/leaderboard", N_("Leaderboard"), ()),
    ):
        if entry not in STAFF_LINKS:
            STAFF_LINKS.append(entry)
