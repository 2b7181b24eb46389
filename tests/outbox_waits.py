"""Waiting for the outbox worker in tests: poll the row instead of sleeping a guessed time."""

from __future__ import annotations

import asyncio

from bot.core.models import OutboxMessage

IN_FLIGHT = ("queued", "sending")


async def wait_status(msg_id: int, *statuses: str, timeout: float = 10.0) -> OutboxMessage:
    """The row once it reaches one of ``statuses`` (or as it is when ``timeout`` runs out)."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        row = await OutboxMessage.get(id=msg_id)
        if row.status in statuses or asyncio.get_running_loop().time() > deadline:
            return row
        await asyncio.sleep(0.02)


async def settled(msg_id: int, timeout: float = 10.0) -> OutboxMessage:
    """The row once the worker has finished with it, whatever the outcome."""
    deadline = asyncio.get_running_loop().time() + timeout
    while True:
        row = await OutboxMessage.get(id=msg_id)
        if row.status not in IN_FLIGHT or asyncio.get_running_loop().time() > deadline:
            return row
        await asyncio.sleep(0.02)
