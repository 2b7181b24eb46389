"""Mounting the Telegram channel on the app: the webhook at ``POST /telegram/webhook``, the
Bot, long polling for development, the command menu, and the outbox sender.
"""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import json
import logging
from collections.abc import AsyncIterator

from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ParseMode
from aiogram.exceptions import TelegramAPIError
from aiogram.utils.token import TokenValidationError, validate_token
from aiohttp import web
from pydantic import ValidationError

from bot.core.app_keys import SERVICES
from bot.channels.telegram.channel import TelegramChannel
from bot.channels.telegram.commands import publish_menu
from bot.channels.telegram.polling import poll
from bot.channels.telegram.updates import ALLOWED_UPDATES, parse_update
from bot.core.settings import Settings

log = logging.getLogger(__name__)

WEBHOOK_PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
TELEGRAM = web.AppKey("telegram", TelegramChannel)


def _error(status: int, message: str) -> web.Response:
    return web.json_response({"ok": False, "error": message}, status=status)


async def webhook(request: web.Request) -> web.Response:
    """Check the secret, validate the Update, process it, then answer 200 (a 500 makes
    Telegram deliver it again, so nothing is lost); sending the answers happens after."""
    channel = request.app.get(TELEGRAM)
    secret = request.app[SERVICES].settings.telegram_webhook_secret
    if channel is None or not secret:
        return _error(503, "telegram webhook is not configured")
    given = request.headers.get(SECRET_HEADER, "")
    if not hmac.compare_digest(given.encode("utf-8", "replace"), secret.encode("utf-8")):
        return _error(401, "wrong or missing secret token")
    body = await request.read()  # over client_max_size: 413
    try:
        update = parse_update(json.loads(body), channel.bot)
    except (json.JSONDecodeError, UnicodeDecodeError):
        return _error(400, "body must be a JSON Update")
    except (ValidationError, TypeError, ValueError) as exc:
        return _error(400, f"not a Telegram Update: {str(exc).splitlines()[0][:200]}")
    try:
        await channel.accept(update)
    except Exception:
        log.exception("telegram update %s could not be processed; Telegram will deliver it again", update.update_id)
        return _error(500, "the update could not be processed now; deliver it again later")
    return web.json_response({"ok": True})


def make_bot(settings: Settings) -> Bot:
    session = AiohttpSession(
        api=TelegramAPIServer.from_base(settings.telegram_api_base),
        timeout=settings.telegram_timeout_seconds,
    )
    return Bot(
        settings.telegram_token,
        session=session,
        default=DefaultBotProperties(parse_mode=ParseMode.HTML, link_preview_is_disabled=True),
    )


async def announce(channel: TelegramChannel, settings: Settings) -> None:
    """Start-up calls that may fail without harm: who am I, the menu, the webhook URL."""
    await channel.me()
    try:
        await publish_menu(channel.bot, channel.services.translator, settings.default_locale)
    except TelegramAPIError as exc:
        log.warning("telegram setMyCommands failed: %s", exc)
    if settings.public_url and not settings.telegram_polling and settings.telegram_webhook_secret:
        url = settings.public_url.rstrip("/") + WEBHOOK_PATH
        try:
            await channel.bot.set_webhook(
                url=url,
                secret_token=settings.telegram_webhook_secret,
                allowed_updates=ALLOWED_UPDATES,
            )
            log.info("telegram webhook set to %s", url)
        except TelegramAPIError as exc:
            log.warning("telegram setWebhook failed: %s", exc)


def setup(app: web.Application, settings: Settings) -> None:
    if not settings.telegram_token:
        return
    try:
        validate_token(settings.telegram_token)
    except TokenValidationError:
        log.error("BOT_TELEGRAM_TOKEN is not a valid bot token; the Telegram channel is off")
        return
    app.router.add_post(WEBHOOK_PATH, webhook)

    async def ctx(app: web.Application) -> AsyncIterator[None]:
        services = app[SERVICES]
        bot = make_bot(settings)
        channel = TelegramChannel(bot, services)
        app[TELEGRAM] = channel
        services.channels.register(channel.sender)
        background = [asyncio.create_task(announce(channel, settings))]
        if settings.telegram_polling:
            background.append(asyncio.create_task(poll(channel)))
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            await asyncio.gather(*background, return_exceptions=True)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(channel.drain(), 10)
            await bot.session.close()

    app.cleanup_ctx.append(ctx)
