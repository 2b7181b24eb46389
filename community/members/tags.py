"""Adding and removing member tags: the one place that writes ``Member.tags``.

Every change is one transaction: the tag row, the member's denormalised list and the audit
record commit together or not at all, and a repeated add or remove changes nothing (no
second audit record), so a retried request or a re-run import acts once.
"""

from __future__ import annotations

import csv
import io
import unicodedata
from dataclasses import dataclass, field

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from bot.core.models import ChannelAccount, Member
from community.members.models import MemberTag, MemberTagChange

MAX_TAG = 64
MAX_TAGS_PER_MEMBER = 50
SOURCES = ("inbox", "api", "cli")


class TagError(ValueError):
    """A tag that cannot be stored (empty, too long, control characters, too many)."""


def normalize_tag(raw: str) -> str:
    """Trimmed, NFKC, lower case; refuses what would not display or filter cleanly."""
    tag = unicodedata.normalize("NFKC", str(raw)).strip().lower()
    if not tag:
        raise TagError("empty tag")
    if len(tag) > MAX_TAG:
        raise TagError(f"a tag has at most {MAX_TAG} characters")
    if any(unicodedata.category(ch).startswith(("C", "Z")) and ch != " " for ch in tag) or "," in tag:
        raise TagError("a tag may not contain commas or control characters")
    return " ".join(tag.split())


async def _sync_rows(member: Member, conn) -> list[str]:  # type: ignore[no-untyped-def]
    """Rows for tags that were only in the list (set before tags were rows), then the list."""
    rows = {r.tag for r in await MemberTag.filter(member_id=member.id).using_db(conn)}
    for raw in member.tags or []:
        try:
            tag = normalize_tag(raw)
        except TagError:
            continue
        if tag not in rows:
            await MemberTag.create(member_id=member.id, tag=tag, using_db=conn)
            rows.add(tag)
    return sorted(rows)


async def change_tag(member_id: int, raw_tag: str, *, add: bool, actor: str, source: str) -> bool:
    """Add or remove one tag; True when something changed. Raises TagError, DoesNotExist."""
    if source not in SOURCES:
        raise ValueError(f"unknown source {source!r}")
    tag = normalize_tag(raw_tag)
    async with in_transaction() as conn:
        member = await Member.select_for_update().using_db(conn).get(id=member_id)
        current = await _sync_rows(member, conn)
        if add == (tag in current):
            if current != list(member.tags or []):
                await Member.filter(id=member_id).using_db(conn).update(tags=current)
            return False
        if add:
            if len(current) >= MAX_TAGS_PER_MEMBER:
                raise TagError(f"a member has at most {MAX_TAGS_PER_MEMBER} tags")
            try:
                await MemberTag.create(member_id=member_id, tag=tag, using_db=conn)
            except IntegrityError:  # cannot happen under the row lock; on SQLite the writer lock
                return False
            current = sorted([*current, tag])
        else:
            await MemberTag.filter(member_id=member_id, tag=tag).using_db(conn).delete()
            current = [t for t in current if t != tag]
        await Member.filter(id=member_id).using_db(conn).update(tags=current)
        await MemberTagChange.create(
            member_id=member_id, tag=tag, op="add" if add else "remove", actor=actor[:128], source=source, using_db=conn
        )
    return True


async def add_tag(member_id: int, tag: str, *, actor: str, source: str) -> bool:
    return await change_tag(member_id, tag, add=True, actor=actor, source=source)


async def remove_tag(member_id: int, tag: str, *, actor: str, source: str) -> bool:
    return await change_tag(member_id, tag, add=False, actor=actor, source=source)


async def history(member_id: int, limit: int = 20) -> list[MemberTagChange]:
    return await MemberTagChange.filter(member_id=member_id).order_by("-id").limit(limit)


@dataclass
class ImportResult:
    changed: int = 0
    unchanged: int = 0
    errors: list[str] = field(default_factory=list)
    members: set[int] = field(default_factory=set)  # whose tags changed


async def find_member(ref: str) -> Member | None:
    """A member named in an import or API call: ``123`` (member id), ``+86…`` (verified
    phone) or ``channel:external_id`` (e.g. ``telegram:4242``)."""
    ref = ref.strip()
    if ref.isascii() and ref.isdigit() and len(ref) <= 12:
        return await Member.get_or_none(id=int(ref))
    if ref.startswith("+") and ref[1:].isdigit():
        return await Member.get_or_none(phone=ref)
    channel, sep, external = ref.partition(":")
    if sep and channel and external:
        account = await ChannelAccount.get_or_none(channel=channel, external_id=external).select_related("member")
        return account.member if account else None
    return None


async def import_csv(text: str, *, actor: str) -> ImportResult:
    """Rows ``member,tag[,op]`` (op: add, the default, or remove); a header row is allowed.
    Bad rows are reported with their line number and skipped; good rows are applied."""
    result = ImportResult()
    # newline="": a lone \r ends a row, as in files saved on old Macs, instead of raising
    for lineno, row in enumerate(csv.reader(io.StringIO(text, newline="")), start=1):
        if not row or not any(c.strip() for c in row):
            continue
        if lineno == 1 and row[0].strip().lower() in ("member", "member_id"):
            continue
        if len(row) < 2:
            result.errors.append(f"line {lineno}: expected member,tag[,add|remove]")
            continue
        op = (row[2].strip().lower() if len(row) > 2 else "") or "add"
        if op not in ("add", "remove"):
            result.errors.append(f"line {lineno}: unknown operation {op!r}")
            continue
        member = await find_member(row[0])
        if member is None:
            result.errors.append(f"line {lineno}: no member {row[0].strip()!r}")
            continue
        try:
            changed = await change_tag(member.id, row[1], add=op == "add", actor=actor, source="cli")
        except TagError as exc:
            result.errors.append(f"line {lineno}: {exc}")
            continue
        if changed:
            result.changed += 1
            result.members.add(member.id)
        else:
            result.unchanged += 1
    return result
