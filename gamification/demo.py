"""Sample rewards for ``make demo``: something to redeem points for on the first visit."""

from __future__ import annotations

from bot.core.settings import Settings
from gamification.models import Reward

# (name, kind, cost in points, stock, per-member limit, face value: yuan / MB / 0)
SAMPLE_REWARDS: tuple[tuple[str, str, int, int, int, int], ...] = (
    ("话费 10 元 · 10 yuan credit", "topup", 1000, 100, 1, 10),
    ("通用流量 1GB · 1 GB data", "data", 600, 200, 2, 1024),
    ("EveryCSR 帆布袋 · canvas bag", "gift", 300, 50, 1, 0),
)


async def demo_rewards(settings: Settings) -> list[str]:
    """Create the sample catalogue once (an operator's own catalogue is never touched)."""
    if not await Reward.exists():
        for name, kind, cost, stock, limit, face in SAMPLE_REWARDS:
            await Reward.create(name=name, kind=kind, cost=cost, stock=stock, per_member_limit=limit, face_value=face)
    return [f"rewards:      {len(SAMPLE_REWARDS)} samples (send 兑换 / redeem in the chat)"]
