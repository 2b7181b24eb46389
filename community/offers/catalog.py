"""The switched-on offers, kept in each worker's memory.

Why: every answer asks which offers could follow it, and the offers change only when a
marketer saves one. Asking the database each time was a quarter of an answered message's
CPU. The catalog loads them once, reloads right after a save on any worker (the save
publishes on the fan-out, Redis across workers), and at the latest ``ttl`` seconds after a
change made where no page publishes (a script, the demo data, another tool writing SQL).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from datetime import datetime

from aiohttp import web

from bot.core.fanout import Fanout
from community.offers.models import Offer

log = logging.getLogger(__name__)

OFFERS_TOPIC = "offers:changed"


class OfferCatalog:
    def __init__(self, ttl: float = 5.0, *, clock: Callable[[], float] = time.monotonic) -> None:
        self.ttl = ttl
        self._clock = clock
        self._offers: list[Offer] | None = None
        self._loaded_at = 0.0
        self._generation = 0  # bumped by every change: a load that started before it is not kept
        self._loading: asyncio.Future[list[Offer]] | None = None
        self._fanout: Fanout | None = None
        self.loads = 0  # database reads: what the cache saves

    async def active(self, now: datetime) -> list[Offer]:
        """The switched-on offers that have not ended, in id order (as ``Offer.filter(active=True)``)."""
        offers = self._offers
        if offers is None or self.ttl <= 0 or self._clock() - self._loaded_at >= self.ttl:
            offers = await self._load()
        return [o for o in offers if not o.ends_at or o.ends_at > now]

    async def _load(self) -> list[Offer]:
        if self._loading is not None:  # one read for everyone asking at once
            return await asyncio.shield(self._loading)
        generation = self._generation
        loading = self._loading = asyncio.get_running_loop().create_future()
        try:
            started = self._clock()
            offers = await Offer.filter(active=True).order_by("id")
            self.loads += 1
            if generation == self._generation:
                self._offers, self._loaded_at = offers, started
            loading.set_result(offers)
            return offers
        except BaseException as exc:
            loading.set_exception(exc)
            loading.exception()  # retrieved: the waiters re-raise it
            raise
        finally:
            self._loading = None

    def forget(self) -> None:
        """Read the offers again at the next answer (this worker)."""
        self._generation += 1
        self._offers = None

    async def changed(self) -> None:
        """An offer was saved: every worker reads the offers again at its next answer."""
        self.forget()
        if self._fanout is not None:
            try:
                await self._fanout.publish(OFFERS_TOPIC, {})
            except Exception as exc:  # the ttl still bounds how stale another worker can be
                log.warning("offer change not published: %s", exc)

    async def follow(self, fanout: Fanout) -> None:
        """Forget the offers whenever another worker saves one (runs until cancelled)."""
        self._fanout = fanout
        async with fanout.subscribe(OFFERS_TOPIC) as sub:
            async for _event in sub:
                self.forget()


OFFER_CATALOG = web.AppKey("offer_catalog", OfferCatalog)
