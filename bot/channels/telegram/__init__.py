"""The Telegram channel (aiogram 3): webhook at ``POST /telegram/webhook``, long polling
for development, the command menu, and the outbox sender.

With ``BOT_TELEGRAM_TOKEN`` empty nothing is mounted (the webhook is a 404) and no Bot is
created. See docs/channels/telegram.md.

aiogram takes ~3 s to import (pydantic builds ~300 Bot API types), so it is imported only when
a token is configured: a service without Telegram starts in half the time. The names of
``mount`` are still importable from here.
"""
from __future__ import annotations

import importlib
from typing import Any

from aiohttp import web

from bot.core.settings import Settings


def setup(app: web.Application, settings: Settings) -> None:
    if not settings.telegram_token:
        return
    from bot.channels.telegram.mount import setup as mount

    mount(app, settings)


def __getattr__(name: str) -> Any:  # TELEGRAM, make_bot, WEBHOOK_PATH … on first use
    mount = importlib.import_module("bot.channels.telegram.mount")
    try:
        return getattr(mount, name)
    except AttributeError:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}") from None
