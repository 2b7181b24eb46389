"""``GET /api/v1/me``: the web chat session's own member, names, standing and badges.

Who "me" is comes from ``bot.web.chat_session`` (the signed session cookie or the operator's
verified user), never from a client-filled field; no session, no answer (401)."""

from __future__ import annotations

from aiohttp import web

from bot.core.app_keys import SERVICES
from bot.core.i18n import DEFAULT_LOCALE, normalize_locale
from bot.core.identity.names import display_name
from bot.core.models import ChannelAccount, Member
from bot.core.accounts import get_or_create_account
from bot.core.settings import Settings
from bot.web.chat_limits import inbound_allowed
from bot.web.chat_session import IdentityRefused, identify
from bot.web.cors import cross_origin, preflight
from gamification.badges import BY_CODE
from gamification.models import MemberBadge
from gamification.trust import standing_of


@cross_origin
async def me_view(request: web.Request) -> web.StreamResponse:
    services = request.app[SERVICES]
    try:
        who = identify(request, services.settings, request.query, create=False)
    except IdentityRefused as exc:
        return web.json_response({"error": str(exc)}, status=401)
    if who is None:
        return web.json_response({"error": "no chat session"}, status=401)
    account = await ChannelAccount.get_or_none(channel="web", external_id=who.external_id)
    if account is None:  # a session that has not written yet: its member starts now, paced
        wait = await inbound_allowed(services, services.settings, request, None)  # like a first message
        if wait:
            return web.json_response(
                {"error": "too many requests"}, status=429, headers={"Retry-After": str(max(1, int(wait + 0.999)))}
            )
        account = await get_or_create_account("web", who.external_id)
    member = await Member.get(id=account.member_id)
    locale = normalize_locale(request.query.get("locale") or member.locale) or DEFAULT_LOCALE
    _ = services.translator.bind(locale)
    standing = await standing_of(member)
    accounts = await ChannelAccount.filter(member_id=member.id).order_by("id")
    badges = await MemberBadge.filter(member_id=member.id).order_by("created_at")
    return web.json_response(
        {
            "member": {
                "id": member.id,
                "display_name": display_name(member, _),
                "trust_level": standing.trust_level,
                "verified_phone": member.phone_verified_at is not None,
                "channels": [{"channel": a.channel, "active": a.active} for a in accounts],
            },
            "points": {"balance": standing.balance, "pending": standing.pending},
            "badges": [
                {
                    "code": b.code,
                    "name": _(BY_CODE[b.code].name) if b.code in BY_CODE else b.code,
                    "since": b.created_at.isoformat(),
                }
                for b in badges
            ],
        }
    )


def setup(app: web.Application, settings: Settings) -> None:
    app.router.add_get("/api/v1/me", me_view)
    app.router.add_route("OPTIONS", "/api/v1/me", preflight)
