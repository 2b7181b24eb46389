"""Typed aiohttp application keys shared by the app factory and the channels."""
from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from bot.services import Services

SERVICES: "web.AppKey[Services]" = web.AppKey("services")
