"""The Telegram channel (aiogram 3): webhook at ``POST /telegram/webhook``, long polling
for development, the command menu, and the outbox sender.

With ``BOT_TELEGRAM_TOKEN`` empty nothing is mounted (the webhook is a 404) and no Bot is
created. See docs/channels/telegram.md.

aiogram takes ~3 s to import (pydantic builds ~300 Bot API types), so it is imported only when
a token is configured: a service without Telegram starts in half the time. Import the
channel's names (``TELEGRAM``, ``make_bot`` …) from ``bot.channels.telegram.mount``.
"""

from __future__ import annotations

from aiohttp import web

from bot.core.settings import Settings


def setup(app: web.Application, settings: Settings) -> None:
    if not settings.telegram_token:
        return
    from bot.channels.telegram.mount import setup as mount

    mount(app, settings)
