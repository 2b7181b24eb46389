"""Members at a given trust level, for the trust and gamification tests."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bot.core.models import Member, TranscriptEntry

_phones = iter(range(10_000_000, 99_999_999))


async def make_trusted(member: Member, *, level: int = 2, phone: str | None = None) -> Member:
    """Give a member what ``level`` asks for in rules.yaml: a verified phone, account age and
    messages (the phone binding itself is the identity layer's; tests may set it directly)."""
    now = datetime.now(timezone.utc)
    member.phone = phone or member.phone or f"+86139{next(_phones)}"
    member.phone_verified_at = now
    if level >= 2:
        member.created_at = now - timedelta(days=90)
        for i in range(12):
            await TranscriptEntry.create(member_id=member.id, channel="web", direction="in", text=f"hi {i}")
    await Member.filter(id=member.id).update(
        phone=member.phone, phone_verified_at=member.phone_verified_at, created_at=member.created_at
    )
    return member


async def trusted_member(level: int = 2, **fields: object) -> Member:
    return await make_trusted(await Member.create(**fields), level=level)
