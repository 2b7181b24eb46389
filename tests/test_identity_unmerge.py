"""Unmerge undoes the merge, not the member's later choices (issue 16 review): a field of the
member row goes back only while it still holds what the merge wrote, so an opt-out, a new
phone, a new name or a new tag given after the merge stands."""

from __future__ import annotations

import itertools
from datetime import datetime, timezone
from typing import Any

from hypothesis import HealthCheck, given, settings as hsettings, strategies as st

from bot.core.identity.merge import Merger, member_links, merged_fields, undo_fields
from bot.core.identity.models import MemberMerge
from bot.core.models import ChannelAccount, Member
from gamification.merge import LedgerMergeHook
from tests.gamification_helpers import standalone

MERGER = Merger([LedgerMergeHook(standalone())])
_numbers = itertools.count(13_700_000_000)

member_spec = st.fixed_dictionaries(
    {
        "phone": st.booleans(),
        "opted_out": st.booleans(),
        "nickname": st.sampled_from(["", "小王", "阿明"]),
        "tags": st.sets(st.sampled_from(["vip", "5g", "tenure:5y"])),
        "locale_explicit": st.booleans(),
    }
)
# what the member does while the two accounts are one
change = st.sampled_from(["none", "opt_out", "opt_in", "new_phone", "drop_phone", "rename", "add_tag", "drop_tags"])


def phone() -> str:
    return f"+86{next(_numbers)}"


async def make(spec: dict[str, Any], name: str) -> Member:
    m = await Member.create(
        display_name=name,
        nickname=spec["nickname"],
        opted_out=spec["opted_out"],
        tags=sorted(spec["tags"]),
        locale="zh_TW" if spec["locale_explicit"] else "zh_CN",
        locale_explicit=spec["locale_explicit"],
        phone=phone() if spec["phone"] else None,
        phone_verified_at=datetime.now(timezone.utc) if spec["phone"] else None,
    )
    await ChannelAccount.create(member=m, channel="web", external_id=f"{name}-{m.id}")
    return m


async def apply(member_id: int, what: str) -> dict[str, Any]:
    """Make the change on the merged member; the fields as the member left them."""
    m = await Member.get(id=member_id)
    if what == "opt_out":
        m.opted_out = True
    elif what == "opt_in":
        m.opted_out = False
    elif what == "new_phone":
        m.phone, m.phone_verified_at = phone(), datetime.now(timezone.utc)
    elif what == "drop_phone":
        m.phone, m.phone_verified_at = None, None
    elif what == "rename":
        m.nickname = "新名字"
    elif what == "add_tag":
        m.tags = sorted(set(m.tags) | {"churn-risk"})
    elif what == "drop_tags":
        m.tags = []
    await m.save()
    return {"opted_out": m.opted_out, "phone": m.phone, "nickname": m.nickname, "tags": sorted(m.tags)}


FIELDS = ("opted_out", "phone", "nickname", "tags", "display_name", "locale", "locale_explicit", "status")


def view(m: Member) -> dict[str, Any]:
    return {f: (sorted(getattr(m, f)) if f == "tags" else getattr(m, f)) for f in FIELDS}


@hsettings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(a=member_spec, b=member_spec, what=change)
async def test_unmerge_keeps_what_the_member_changed_after_the_merge(
    sqlite_orm: None, a: dict, b: dict, what: str
) -> None:
    if a["phone"] and b["phone"]:
        b = {**b, "phone": False}  # two verified phones refuse to merge (test_identity_merge)
    src, dst = await make(a, "src"), await make(b, "dst")
    src_before, dst_before = view(await Member.get(id=src.id)), view(await Member.get(id=dst.id))
    record = await MERGER.merge(src.id, dst.id, via="staff", actor="staff:test")
    merged = view(await Member.get(id=dst.id))
    changed = await apply(dst.id, what) if what != "none" else {}
    later = {k: v for k, v in changed.items() if v != merged[k]}  # what the member really changed

    await MERGER.unmerge(record.id, actor="staff:test")
    src_after, dst_after = view(await Member.get(id=src.id)), view(await Member.get(id=dst.id))

    # the later change stands
    for field, value in later.items():
        if field == "tags":
            assert set(dst_after["tags"]) == set(value) - (set(merged["tags"]) - set(dst_before["tags"]))
        else:
            assert dst_after[field] == value, (field, what, dst_after)
    # everything else is as before the merge, on both members
    for field in FIELDS:
        if field not in later:
            assert dst_after[field] == dst_before[field], (field, what, dst_before, dst_after)
    assert src_after["status"] == "active"
    for field in ("nickname", "tags", "display_name", "locale", "locale_explicit"):
        assert src_after[field] == src_before[field], field
    # an opt-out given while the accounts were one binds both; nothing else moves the source's
    if later.get("opted_out") is True:
        assert src_after["opted_out"] is True
    else:
        assert src_after["opted_out"] == src_before["opted_out"]
    # the source's number comes back unless the target still holds it as their own
    assert src_after["phone"] == (src_before["phone"] if src_before["phone"] != dst_after["phone"] else None)
    # merge -> unmerge without any change in between is the identity
    if not later:
        assert (src_after, dst_after) == (src_before, dst_before)
    # rows went back too
    assert await ChannelAccount.filter(member_id=src.id).count() == 1
    assert (await MemberMerge.get(id=record.id)).status == "unmerged"


def test_undo_fields_only_touches_values_the_merge_wrote() -> None:
    before = {
        "opted_out": False,
        "phone": None,
        "phone_verified_at": None,
        "tags": ["vip"],
        "nickname": "",
        "display_name": "dst",
    }
    source = {
        "opted_out": True,
        "phone": "+8613800000001",
        "phone_verified_at": "2026-01-01T00:00:00+00:00",
        "tags": ["5g"],
        "nickname": "阿明",
        "display_name": "src",
    }
    merged = merged_fields(source, before)["target"]
    assert merged["phone"] == "+8613800000001" and merged["opted_out"] is True and merged["tags"] == ["5g", "vip"]
    # nothing changed since: everything the merge wrote goes back (the name it kept is not touched)
    assert undo_fields(before, merged, dict(merged)) == {
        "opted_out": False,
        "phone": None,
        "phone_verified_at": None,
        "tags": ["vip"],
        "nickname": "",
    }
    # opted back in, a new phone, a new tag since: those stay; the merge's own tag goes
    now = {**merged, "opted_out": False, "phone": "+8613900000002", "tags": ["5g", "vip", "churn-risk"]}
    assert undo_fields(before, merged, now) == {"tags": ["churn-risk", "vip"], "nickname": ""}


async def test_member_links_come_from_the_public_description(sqlite_orm: None) -> None:
    links = {(link.model.__name__, link.field): link for link in member_links()}
    assert ("ChannelAccount", "member") in links and not links[("ChannelAccount", "member")].one_to_one
    assert ("MemberMerge", "source") in links  # skipped by the merger (merge_skip), still found
    assert all(link.model.describe(serializable=False)["pk_field"]["name"] for link in links.values())
