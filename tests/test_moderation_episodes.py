"""Forwarding freezes lift after a clean period; warnings after a lifted freeze or after
staff dealt with a held post are a new episode, so a review flag keyed by episode reopens."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from bot.core.accounts import get_or_create_account
from community.moderation import service as moderation
from community.moderation.models import MemberStanding, ModerationAudit, ReviewItem


async def test_freeze_lifts_after_clean_period_and_a_new_episode_starts(services, gam, monkeypatch) -> None:
    seen: list[dict] = []

    async def hook(member_id: int, warnings: int, freeze_forwarding: bool = False, episode: int = 0) -> None:
        seen.append({"warnings": warnings, "frozen": freeze_forwarding, "episode": episode})

    monkeypatch.setattr(gam, "on_moderation_warning", hook)  # what the app's scoring subscriber calls
    mid = (await get_or_create_account("web", "mod-ep")).member_id
    for n in range(2):
        await moderation.warn_member(services, mid, content_type="answer", content_id=n)
    assert await moderation.is_forwarding_frozen(mid)
    assert [s["episode"] for s in seen] == [0, 0] and seen[-1]["frozen"]
    # still inside the clean period: stays frozen
    assert not await moderation.lift_if_clean(mid)
    assert await moderation.is_forwarding_frozen(mid)
    # the clean period passes without a warning: lifted on the next check, once
    await MemberStanding.filter(member_id=mid).update(clean_until=datetime.now(timezone.utc) - timedelta(seconds=1))
    assert not await moderation.is_forwarding_frozen(mid)
    standing = await MemberStanding.get(member_id=mid)
    assert (standing.warnings, standing.forwarding_frozen, standing.episode) == (0, False, 1)
    assert await ModerationAudit.filter(action="unfreeze_forwarding", member_id=mid).count() == 1
    # a later warning is episode 1 and counts from zero: one warning does not refreeze
    await moderation.warn_member(services, mid, content_type="answer", content_id=9)
    assert seen[-1] == {"warnings": 1, "frozen": False, "episode": 1}
    assert not await moderation.is_forwarding_frozen(mid)


async def test_a_warning_during_the_clean_period_extends_it(services) -> None:
    mid = (await get_or_create_account("web", "mod-ext")).member_id
    for n in range(2):
        await moderation.warn_member(services, mid, content_type="answer", content_id=n)
    before = (await MemberStanding.get(member_id=mid)).clean_until
    await moderation.warn_member(services, mid, content_type="answer", content_id=3)
    after = await MemberStanding.get(member_id=mid)
    assert after.clean_until > before and after.forwarding_frozen and after.warnings == 3
    assert services.settings.moderation_freeze_clean_days == 30.0
    assert after.clean_until - datetime.now(timezone.utc) > timedelta(days=29)


async def test_sweep_lifts_only_expired_freezes(services) -> None:
    a = (await get_or_create_account("web", "sw-a")).member_id
    b = (await get_or_create_account("web", "sw-b")).member_id
    for mid in (a, b):
        for n in range(2):
            await moderation.warn_member(services, mid, content_type="answer", content_id=n)
    await MemberStanding.filter(member_id=a).update(clean_until=datetime.now(timezone.utc) - timedelta(minutes=1))
    assert await moderation.lift_clean_freezes() == 1
    assert await moderation.lift_clean_freezes() == 0
    assert not (await MemberStanding.get(member_id=a)).forwarding_frozen
    assert (await MemberStanding.get(member_id=b)).forwarding_frozen


async def test_staff_decision_on_a_held_post_starts_a_new_episode(services) -> None:
    mid = (await get_or_create_account("web", "mod-held")).member_id
    await moderation.warn_member(services, mid, content_type="answer", content_id=1)
    item = await ReviewItem.create(content_type="answer", content_id=1, member_id=mid, text="x", action="hold")
    assert await moderation.decide(item.id, approve=False, reason="rumour", reviewer="rita")
    assert (await MemberStanding.get(member_id=mid)).episode == 1
    # deciding again changes nothing
    assert await moderation.decide(item.id, approve=True, reason="x", reviewer="rita") is None
    assert (await MemberStanding.get(member_id=mid)).episode == 1


async def test_gamification_flag_reopens_per_episode_after_staff_cleared_it(services) -> None:
    """The real gamification hook: the flag is keyed by (member, episode), so warnings after
    staff cleared the hold open a new flag instead of vanishing under the old key."""
    from gamification.models import ReviewFlag

    mid = (await get_or_create_account("web", "mod-flag")).member_id
    for n in range(2):
        await moderation.warn_member(services, mid, content_type="answer", content_id=n)
    flags = await ReviewFlag.filter(member_id=mid, reason="moderation")
    assert [f.status for f in flags] == ["open"]
    await ReviewFlag.filter(id=flags[0].id).update(status="cleared")
    # a third warning in the same episode after staff cleared: a new flag, once
    await moderation.warn_member(services, mid, content_type="answer", content_id=3)
    assert await ReviewFlag.filter(member_id=mid, reason="moderation", status="open").count() == 1
    await ReviewFlag.filter(member_id=mid, reason="moderation").update(status="cleared")
    # the freeze lifts after a clean period: episode 1; two new warnings open a new flag
    await MemberStanding.filter(member_id=mid).update(clean_until=datetime.now(timezone.utc) - timedelta(seconds=1))
    assert await moderation.lift_if_clean(mid)
    for n in range(10, 12):
        await moderation.warn_member(services, mid, content_type="answer", content_id=n)
    open_ = await ReviewFlag.filter(member_id=mid, reason="moderation", status="open")
    assert len(open_) == 1 and open_[0].detail["episode"] == 1
    assert await ReviewFlag.filter(member_id=mid, reason="moderation").count() == 3
