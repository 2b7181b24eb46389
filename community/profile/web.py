"""``GET /members/{id}`` (a member's public profile) and ``GET /badges`` (every badge)."""

from __future__ import annotations

from pathlib import Path

from aiohttp import web

from bot.web import page_gettext, render
from bot.web.lookup import path_id
from community.profile.service import badge_catalogue, profile_of

TEMPLATES = Path(__file__).with_name("templates")


async def member_page(request: web.Request) -> web.Response:
    profile = await profile_of(path_id(request, "member_id", "member"), page_gettext(request))
    if profile is None:
        raise web.HTTPNotFound(text="No such member.")
    return render(request, "member_profile.html", p=profile)


async def badges_page(request: web.Request) -> web.Response:
    return render(request, "badges.html", entries=await badge_catalogue(page_gettext(request)))


def add_routes(app: web.Application) -> None:
    app.router.add_get("/members/{member_id}", member_page)
    app.router.add_get("/badges", badges_page)
