"""Typed aiohttp application keys shared by the app factory and the channels."""

from __future__ import annotations

from typing import TYPE_CHECKING

from aiohttp import web

if TYPE_CHECKING:
    from bot.core.outbox import OutboxWorker
    from bot.core.services import Services

SERVICES: "web.AppKey[Services]" = web.AppKey("services")
# what this process does with the outbox: "both" (the single process), "web" (hands rows
# to the queue only), "worker" (the queue worker: sends). Channels that keep a session
# for sending (SMPP) open it only where sends happen.
# the single-process outbox worker (absent when the taskiq queue sends)
OUTBOX_WORKER: "web.AppKey[OutboxWorker]" = web.AppKey("outbox_worker")
PROCESS_ROLE: "web.AppKey[str]" = web.AppKey("outbox_queue_role", str)
