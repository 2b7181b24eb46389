"""One-time link codes: issued, stored only as a keyed hash, expiring, attempts capped.

``phone`` codes (6 digits) go by SMS to the number being proven and are checked only for
the member who asked, on any of their channels: a guesser needs that member's account and
has five tries. ``bind`` codes (8 letters and digits, ~10^12) are shown on one channel and
typed on another, so they are looked up by their hash; failed lookups are rate-limited per
member by the caller."""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from datetime import timedelta

from bot.core.clock import utcnow
from bot.core.identity.models import LinkCode

PHONE_CODE_TTL = timedelta(minutes=10)
BIND_CODE_TTL = timedelta(minutes=10)
MAX_ATTEMPTS = 5
PHONE_CODES_PER_NUMBER_PER_DAY = 3
PHONE_CODES_PER_MEMBER_PER_DAY = 5
BIND_CODES_PER_MEMBER_PER_DAY = 10
RESEND_AFTER = timedelta(seconds=60)
BIND_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"  # no 0/O, 1/I


class TooManyCodes(Exception):
    """The member or the number asked for too many codes lately."""


@dataclass(frozen=True)
class Issued:
    code: str
    row: LinkCode


def code_hash(secret_key: str, kind: str, code: str) -> str:
    return hmac.new(secret_key.encode(), f"link:{kind}:{code}".encode(), hashlib.sha256).hexdigest()


def normalize_code(raw: str) -> str:
    return "".join(ch for ch in raw.upper() if ch.isalnum())


def looks_like_phone_code(raw: str) -> bool:
    c = normalize_code(raw)
    return len(c) == 6 and c.isdigit()


def looks_like_bind_code(raw: str) -> bool:
    c = normalize_code(raw)
    return len(c) == 8 and all(ch in BIND_ALPHABET for ch in c)


async def issue_phone_code(secret_key: str, member_id: int, account_id: int, phone: str) -> Issued:
    now = utcnow()
    day = now - timedelta(days=1)
    recent = await LinkCode.filter(kind="phone", phone=phone, created_at__gte=day).order_by("-created_at")
    if len(recent) >= PHONE_CODES_PER_NUMBER_PER_DAY or (recent and now - recent[0].created_at < RESEND_AFTER):
        raise TooManyCodes(phone)
    if (
        await LinkCode.filter(kind="phone", member_id=member_id, created_at__gte=day).count()
        >= PHONE_CODES_PER_MEMBER_PER_DAY
    ):
        raise TooManyCodes(str(member_id))
    code = f"{secrets.randbelow(10**6):06d}"
    row = await LinkCode.create(
        kind="phone",
        member_id=member_id,
        account_id=account_id,
        phone=phone,
        code_hash=code_hash(secret_key, "phone", code),
        expires_at=now + PHONE_CODE_TTL,
    )
    return Issued(code, row)


async def issue_bind_code(secret_key: str, member_id: int, account_id: int) -> Issued:
    now = utcnow()
    if (
        await LinkCode.filter(kind="bind", member_id=member_id, created_at__gte=now - timedelta(days=1)).count()
        >= BIND_CODES_PER_MEMBER_PER_DAY
    ):
        raise TooManyCodes(str(member_id))
    code = "".join(secrets.choice(BIND_ALPHABET) for _ in range(8))
    row = await LinkCode.create(
        kind="bind",
        member_id=member_id,
        account_id=account_id,
        code_hash=code_hash(secret_key, "bind", code),
        expires_at=now + BIND_CODE_TTL,
    )
    return Issued(code, row)


async def _use(row: LinkCode) -> bool:
    """Mark used once (a retried message or a race gets False)."""
    return await LinkCode.filter(id=row.id, used_at=None).update(used_at=utcnow()) == 1


async def redeem_phone_code(secret_key: str, member_id: int, raw: str) -> LinkCode | None:
    """The member's live phone code matching ``raw`` (now used), else None (a wrong try counts)."""
    now = utcnow()
    live = await LinkCode.filter(
        kind="phone", member_id=member_id, used_at=None, expires_at__gt=now, attempts__lt=MAX_ATTEMPTS
    ).order_by("-id")
    want = code_hash(secret_key, "phone", normalize_code(raw))
    for row in live:
        if hmac.compare_digest(row.code_hash, want):
            return row if await _use(row) else None
    for row in live:  # every live code of this member loses a try
        await LinkCode.filter(id=row.id).update(attempts=row.attempts + 1)
    return None


async def redeem_bind_code(secret_key: str, raw: str) -> LinkCode | None:
    row = await LinkCode.get_or_none(
        kind="bind", code_hash=code_hash(secret_key, "bind", normalize_code(raw)), used_at=None, expires_at__gt=utcnow()
    )
    if row is None or not await _use(row):
        return None
    return row


async def has_live_phone_code(member_id: int) -> bool:
    return await LinkCode.filter(
        kind="phone", member_id=member_id, used_at=None, expires_at__gt=utcnow(), attempts__lt=MAX_ATTEMPTS
    ).exists()
