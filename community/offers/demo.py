"""A sample offer for ``make demo``: ask about data and it is appended to the answer."""

from __future__ import annotations

from bot.core.settings import Settings
from community.offers.models import Offer

SAMPLE_TITLE = "流量叠加包限时 8 折"


async def demo_offer(settings: Settings) -> list[str]:
    """Create the sample offer once; marketers edit or switch it off at /admin/offers."""
    if not await Offer.exists(title=SAMPLE_TITLE):
        await Offer.create(
            title=SAMPLE_TITLE,
            body="{{ member.name or '您' }}好，流量快不够用了？1GB 流量叠加包本月 8 折，回复即可开通。",
            action_label="开通流量叠加包",
            trigger_categories=["data"],
            locales=["zh_CN", "zh_TW"],
            repeat_days=7,
            priority=1,
            created_by="demo",
        )
    quiet = settings.offers_quiet_hours or "none"
    return [f"offers:       1 sample on data questions (quiet hours {quiet}: none shown then)"]
