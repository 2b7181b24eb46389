"""Live inbox updates over ``bot.core.fanout`` (in-process, or Redis pub/sub across workers)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from bot.core.fanout import Subscription

if TYPE_CHECKING:
    from bot.core.services import Services

TOPIC = "inbox"


async def publish(services: "Services", data: dict[str, Any]) -> None:
    """Tell open inbox pages that something changed (ticket id and what)."""
    await services.fanout.publish(TOPIC, data)


def subscribe(services: "Services") -> Subscription:
    return services.fanout.subscribe(TOPIC)
