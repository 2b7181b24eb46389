"""Impressions, clicks and acceptances per offer: the conversion figures."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from tortoise.functions import Count

from community.offers.models import OfferEvent


@dataclass(slots=True)
class Conversion:
    offer_id: int
    impressions: int = 0
    clicks: int = 0
    accepts: int = 0

    @property
    def click_rate(self) -> float | None:
        return self.clicks / self.impressions if self.impressions else None

    @property
    def conversion(self) -> float | None:
        return self.accepts / self.impressions if self.impressions else None


async def conversion_by_offer(since: datetime | None = None, until: datetime | None = None) -> dict[int, Conversion]:
    q = OfferEvent.all()
    if since:
        q = q.filter(created_at__gte=since)
    if until:
        q = q.filter(created_at__lt=until)
    rows = await q.annotate(n=Count("id")).group_by("offer_id", "kind").values("offer_id", "kind", "n")
    out: dict[int, Conversion] = {}
    for row in rows:
        conv = out.setdefault(row["offer_id"], Conversion(row["offer_id"]))
        attr = {"impression": "impressions", "click": "clicks", "accept": "accepts"}.get(row["kind"])
        if attr:
            setattr(conv, attr, int(row["n"]))
    return out
