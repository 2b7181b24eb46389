"""Outbound senders per channel, and the errors they raise."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Protocol

from bot.core.messages import Reply

if TYPE_CHECKING:
    from bot.core.models import OutboxMessage


@dataclass
class SendResult:
    provider_ref: str = ""
    segments: int | None = None


class SendError(Exception):
    """A failed send.

    ``permanent``: never retry (blocked, invalid number); ``hold``: cannot be sent now
    but may later (outside the WeChat service window, quota); ``retry_after``: the
    provider asked us to wait this many seconds; ``ambiguous``: it may have arrived
    (timeout after the request was written), so it is not blindly repeated.
    """

    def __init__(
        self,
        reason: str,
        *,
        permanent: bool = False,
        hold: bool = False,
        retry_after: float | None = None,
        ambiguous: bool = False,
        unreachable: bool = False,
    ) -> None:
        super().__init__(reason)
        self.reason = reason
        self.permanent = permanent
        self.hold = hold
        self.retry_after = retry_after
        self.ambiguous = ambiguous
        self.unreachable = unreachable


class ChannelSender(Protocol):
    name: str

    # sending limits the outbox enforces (messages per second); None: unlimited. Read-only
    # here, so a sender may declare them as plain ``None`` class attributes
    @property
    def rate_global(self) -> float | None: ...

    @property
    def rate_per_chat(self) -> float | None: ...

    async def send(self, message: "OutboxMessage", reply: Reply, locale: str) -> SendResult: ...


class ChannelRegistry:
    def __init__(self) -> None:
        self._senders: dict[str, ChannelSender] = {}

    def register(self, sender: ChannelSender) -> None:
        self._senders[sender.name] = sender

    def get(self, name: str) -> ChannelSender | None:
        return self._senders.get(name)

    def names(self) -> list[str]:
        return sorted(self._senders)
