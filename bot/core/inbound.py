"""The port a channel hands a member's message to, and what it gets back.

Channels (``bot/channels/*``, ``sms_gateway``) know their wire and this module; the
pipeline behind the port (``bot.pipeline.Pipeline``: dedup, member, handlers, transcript)
is the assembly's business. So a channel is tested with any object that answers
``handle``/``process``, and reading a channel never leads into conversation code.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Protocol, runtime_checkable

from redis.asyncio import Redis

from bot.core.fanout import Fanout
from bot.core.i18n import Gettext, Translator
from bot.core.messages import Incoming, Reply
from bot.core.nonces import NonceStore
from bot.core.settings import Settings
from bot.core.stores import DedupStore, RateLimiter, StateStore

if TYPE_CHECKING:
    from bot.core.channel_registry import ChannelRegistry
    from bot.core.outbox import Outbox

__all__ = ["MORE_ACTION", "ChannelServices", "Handled", "MessageHandler", "PagedChannel"]

# the action of the "show the rest" choice a paged channel adds to a cut reply; the
# conversation side (handlers.continuation) answers it with the next page
MORE_ACTION = "smsmore"


@dataclass(slots=True)
class Handled:
    """The outcome of one delivery of a message.

    ``answered``: processed now. ``repeat``: a retry; ``replies`` is the first answer
    (already given once: channels that send out of band must not send it again except
    through the outbox's idempotency keys). ``pending``: another live worker is still
    processing it; its answer goes out from there (a channel that can be redelivered
    later may ask for that instead).
    """

    replies: list[Reply]
    status: Literal["answered", "repeat", "pending"] = "answered"


class MessageHandler(Protocol):
    """What a channel calls with an :class:`Incoming`: the pipeline, seen from the wire."""

    async def handle(self, incoming: Incoming, *, wait: float | None = None) -> Handled:
        """Process once under the message's dedup claim; how the replies came is in the result."""
        ...

    async def process(self, incoming: Incoming) -> list[Reply]:
        """Process once; a retry of the same message gets the first answer back."""
        ...


@runtime_checkable
class PagedChannel(Protocol):
    """A channel sender whose messages have a size budget (SMS: ``sms_max_segments``).

    ``fit`` returns the part of ``reply`` that fits, ending with a :data:`MORE_ACTION`
    choice when something was cut, and the rest (None when it all fitted). The
    conversation keeps the rest and answers the choice (``handlers.continuation``)."""

    def fit(self, reply: Reply, _: Gettext) -> tuple[Reply, Reply | None]: ...


class ChannelServices(Protocol):
    """The per-process services a channel uses: its settings, text, stores, the outbox,
    the sender registry and the port to the pipeline (None until the app has built it)."""

    @property
    def settings(self) -> Settings: ...

    @property
    def translator(self) -> Translator: ...

    @property
    def dedup(self) -> DedupStore: ...

    @property
    def state(self) -> StateStore: ...

    @property
    def limiter(self) -> RateLimiter: ...

    @property
    def channels(self) -> ChannelRegistry: ...

    @property
    def outbox(self) -> Outbox: ...

    @property
    def pipeline(self) -> MessageHandler | None: ...

    @property
    def fanout(self) -> Fanout: ...

    @property
    def nonces(self) -> NonceStore: ...

    @property
    def redis(self) -> Redis | None: ...
