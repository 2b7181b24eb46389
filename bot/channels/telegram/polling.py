"""Long polling for development (``python -m bot run --telegram-polling``).

No public URL needed: the bot asks Telegram for updates (``getUpdates``) and feeds them
to the same :class:`TelegramChannel` the webhook uses. The webhook is removed first,
because Telegram refuses ``getUpdates`` while one is set.
"""

from __future__ import annotations

import asyncio
import logging

from aiogram.exceptions import TelegramAPIError, TelegramConflictError
from aiogram.types import Update

from bot.channels.telegram.channel import TelegramChannel
from bot.channels.telegram.updates import ALLOWED_UPDATES

log = logging.getLogger(__name__)


async def poll(channel: TelegramChannel, *, timeout: int = 25, max_backoff: float = 30.0) -> None:
    """Fetch and process updates until cancelled; each update is confirmed (by the next
    offset) only after it was processed, and the pipeline dedups what comes twice."""
    bot = channel.bot
    try:
        await bot.delete_webhook(drop_pending_updates=False)
    except TelegramAPIError as exc:
        log.warning("telegram deleteWebhook failed: %s", exc)
    offset: int | None = None
    backoff = 1.0
    while True:
        try:
            updates = await bot.get_updates(
                offset=offset,
                timeout=timeout,
                allowed_updates=ALLOWED_UPDATES,
                request_timeout=timeout + 10,
            )
        except asyncio.CancelledError:
            raise
        except TelegramConflictError as exc:  # another poller or a webhook
            log.warning("telegram getUpdates conflict: %s", exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff)
            continue
        except TelegramAPIError as exc:
            log.warning("telegram getUpdates failed: %s", exc)
            await asyncio.sleep(backoff)
            backoff = min(backoff * 2, max_backoff)
            continue
        backoff = 1.0
        for update in updates:
            await _accept_with_retries(channel, update, max_backoff)
            offset = update.update_id + 1


MAX_ATTEMPTS = 5  # per update, before it is skipped (logged) so one cannot stall the bot


async def _accept_with_retries(channel: TelegramChannel, update: Update, max_backoff: float) -> None:
    """Process one update, retrying with backoff while it fails (the database is down,
    say); the offset moves past it only after that, or after MAX_ATTEMPTS (logged)."""
    delay = 1.0
    for attempt in range(1, MAX_ATTEMPTS + 1):
        try:
            await channel.accept(update)
            return
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("telegram update %s failed (attempt %d of %d)", update.update_id, attempt, MAX_ATTEMPTS)
            if attempt < MAX_ATTEMPTS:
                await asyncio.sleep(delay)
                delay = min(delay * 2, max_backoff)
    log.error("telegram update %s skipped after %d attempts", update.update_id, MAX_ATTEMPTS)
