"""What every layer is handed: the process's infrastructure, as typed fields.

The app factory (bot/app.py) builds one per process; channels, the pipeline, handlers and the
domains' pages read what they need from it. Everything here is kernel: the knowledge base and
the pipeline are reached through the small interfaces below, which their packages implement.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from aiohttp import ClientSession
from redis.asyncio import Redis

from bot.core.events import EventBus
from bot.core.fanout import Fanout, MemoryFanout
from bot.core.group_commit import GroupCommit
from bot.core.i18n import Translator
from bot.core.identity.merge import Merger
from bot.core.inbound import MessageHandler
from bot.core.nonces import MemoryNonceStore, NonceStore
from bot.core.settings import Settings
from bot.core.stores import DedupStore, RateLimiter, StateStore

if TYPE_CHECKING:
    from bot.core.channel_registry import ChannelRegistry
    from bot.core.outbox import Outbox


class KnowledgeBase(Protocol):
    """The knowledge base as the kernel and its users see it (community.knowledge implements it).

    Decisions and items are the community package's types; callers that need their fields
    import them from there."""

    async def load(self) -> int: ...
    async def close(self) -> None: ...
    async def adecide(self, text: str, locale: str | None) -> Any: ...
    async def get(self, item_id: int) -> Any: ...
    async def localized(self, item: Any, locale: str) -> Any: ...
    async def by_code(self, code: str, locale: str) -> Any: ...
    async def follow(self, fanout: Fanout) -> None: ...
    async def watch(self, every: float) -> None: ...
    def reindex(self, items: Iterable[Any]) -> None: ...

    @property
    def matcher(self) -> Any: ...

    # self-calibration figures per stage and whether thresholds follow them (reviewers' page)
    @property
    def calibration(self) -> Mapping[str, Any]: ...

    @property
    def self_calibrate(self) -> bool: ...


@dataclass
class Services:
    settings: Settings
    translator: Translator
    dedup: DedupStore
    state: StateStore
    limiter: RateLimiter
    channels: "ChannelRegistry"
    kb: KnowledgeBase
    outbox: "Outbox"
    pipeline: MessageHandler | None = None  # the message pipeline (bot.pipeline.Pipeline), set by the app factory
    writes: GroupCommit = field(default_factory=GroupCommit)  # the hot path's durable writes
    fanout: Fanout = field(default_factory=MemoryFanout)  # server-sent events across workers (ops_web sets Redis)
    nonces: NonceStore = field(default_factory=MemoryNonceStore)  # webhook nonces, login throttles
    http: ClientSession | None = None  # the process's outbound HTTP pool (keep-alive), opened by the app
    redis: Redis | None = None  # the shared pool when BOT_REDIS_URL is set (stores, fan-out, nonces)
    merger: Merger = field(default_factory=lambda: Merger([]))  # member merges, with the domains' hooks
    events: EventBus = field(default_factory=EventBus)  # cross-domain events, wired in bot/subscriptions.py
