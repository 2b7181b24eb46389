"""The per-process service container handed to channels and handlers."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from bot.core.group_commit import GroupCommit
from bot.core.i18n import Translator
from bot.core.settings import Settings
from bot.core.stores import DedupStore, RateLimiter, StateStore

if TYPE_CHECKING:
    from bot.core.channel_registry import ChannelRegistry
    from bot.core.outbox import Outbox
    from bot.pipeline import Pipeline
    from community.knowledge import KnowledgeService


@dataclass
class Services:
    settings: Settings
    translator: Translator
    dedup: DedupStore
    state: StateStore
    limiter: RateLimiter
    channels: "ChannelRegistry"
    kb: "KnowledgeService"
    outbox: "Outbox"
    pipeline: "Pipeline | None" = None
    writes: GroupCommit = field(default_factory=GroupCommit)  # the hot path's durable writes
    # domain services added by later features (community, gamification, offers ...)
    extras: dict[str, Any] = field(default_factory=dict)
