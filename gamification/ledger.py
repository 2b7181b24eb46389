"""The points ledger: atomic, idempotent award / spend / reverse.

Every change is one transaction that locks the member's :class:`Balance` row (``SELECT …
FOR UPDATE`` on PostgreSQL; SQLite transactions are serialised by tortoise), inserts an
entry under a UNIQUE idempotency key and updates the cached balance. A replayed or raced
event finds the key taken and gets the first result back; nothing pays twice. The balance
never goes below zero: a spend is refused when it cannot be covered (and the update is
conditional on that, as a second guard), and a reversal that finds the points already
spent records the shortfall as ``debt`` that later earnings pay off first. Invariant:
``balance - debt == sum(granted)``.

Held points (``held``) are not spendable: pending until ``hold_until`` (earned through a
not-yet-trusted member's action) and/or waiting for a review. :func:`release` pays an entry's
hold out once; :func:`reverse` of a held entry drops the hold, and of a released one takes the
released points back too. Invariants: ``Balance.held == sum(held) >= 0`` and
``balance - debt + held == sum(granted + held)``.
"""

from __future__ import annotations

import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime

from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.expressions import F
from tortoise.transactions import in_transaction

from gamification.models import Balance, LedgerEntry

SPEND_EVENTS = frozenset({"spend", "expiry"})


class InsufficientPoints(Exception):
    """The balance does not cover a spend."""


class NotReversible(Exception):
    """The entry cannot be reversed (it is itself a reversal, or unknown)."""


@dataclass(frozen=True)
class Grant:
    """What a cap policy allows, decided while the member's balance row is locked."""

    amount: int
    held: int = 0
    note: str = ""
    hold_until: datetime | None = None  # the held part is pending until then (None: until a review)


@dataclass(frozen=True)
class LedgerResult:
    entry_id: int
    delta: int
    granted: int
    held: int
    duplicate: bool
    balance: int
    note: str = ""

    @property
    def capped(self) -> bool:
        return self.granted + self.held < self.delta


Policy = Callable[[BaseDBAsyncClient, int], Awaitable[Grant]]


def key_of(*parts: object) -> str:
    """An idempotency key from parts; long ones are hashed to fit the column."""
    raw = ":".join(str(p) for p in parts)
    if len(raw) <= 191:
        return raw
    return raw[:150] + ":" + hashlib.sha256(raw.encode()).hexdigest()[:32]


async def _ensure_balance(member_id: int) -> None:
    if await Balance.exists(member_id=member_id):
        return
    try:
        await Balance.create(member_id=member_id)
    except IntegrityError:
        pass  # created concurrently


async def _existing(key: str) -> LedgerResult | None:
    entry = await LedgerEntry.get_or_none(idempotency_key=key)
    if entry is None:
        return None
    bal = await Balance.get_or_none(member_id=entry.member_id)
    return LedgerResult(entry.id, entry.delta, entry.granted, entry.held, True, bal.balance if bal else 0)


async def existing(key: str) -> LedgerResult | None:
    """The result of the change already recorded under ``key`` (a replay), else None."""
    return await _existing(key)


class _NoBalanceRow(Exception):
    """The member has no balance row yet: create it outside the transaction, then retry."""


async def _locked_balance(conn: BaseDBAsyncClient, member_id: int) -> Balance:
    bal = await Balance.filter(member_id=member_id).select_for_update().using_db(conn).first()
    if bal is None:
        raise _NoBalanceRow(member_id)
    return bal


async def _with_balance_row(member_id: int, run: Callable[[], Awaitable[LedgerResult]]) -> LedgerResult:
    """Run a ledger transaction; on a member's first change, create the row and run again."""
    try:
        return await run()
    except _NoBalanceRow:
        await _ensure_balance(member_id)
        return await run()


def _apply(bal: Balance, granted: int) -> tuple[int, int]:
    """New (balance, debt) after a grant: positives pay debt first, negatives make debt."""
    balance, debt = bal.balance, bal.debt
    if granted >= 0:
        pay = min(debt, granted)
        return balance + granted - pay, debt - pay
    take = min(balance, -granted)
    return balance - take, debt + (-granted - take)


async def _write(
    conn: BaseDBAsyncClient,
    bal: Balance,
    *,
    member_id: int,
    event: str,
    delta: int,
    granted: int,
    held: int,
    key: str,
    ref: str,
    reason: str,
    reversal_of: int | None = None,
    counterpart_id: int | None = None,
    item_id: int | None = None,
    exempt: bool = False,
    earning: bool = False,
    hold_until: datetime | None = None,
) -> LedgerEntry:
    entry = await LedgerEntry.create(
        using_db=conn,
        member_id=member_id,
        event=event,
        delta=delta,
        granted=granted,
        held=held,
        reason=reason[:128],
        ref=ref[:128],
        idempotency_key=key,
        reversal_of_id=reversal_of,
        counterpart_id=counterpart_id,
        item_id=item_id,
        exempt=exempt,
        earning=earning,
        hold_until=hold_until if held > 0 else None,
    )
    balance, debt = _apply(bal, granted)
    updates: dict[str, object] = {"balance": balance, "debt": debt, "held": F("held") + held}
    if earning:
        updates["lifetime"] = F("lifetime") + granted
        if granted > 0:
            updates["last_earned_at"] = entry.created_at
    changed = (
        await Balance.filter(member_id=member_id, balance=bal.balance, debt=bal.debt).using_db(conn).update(**updates)
    )
    if changed != 1:  # the row moved under us: never write a stale balance
        raise RuntimeError("balance changed during a locked ledger transaction")
    bal.balance, bal.debt = balance, debt
    return entry


async def award(
    member_id: int,
    event: str,
    delta: int,
    *,
    key: str,
    ref: str = "",
    reason: str = "",
    counterpart_id: int | None = None,
    item_id: int | None = None,
    exempt: bool = False,
    policy: Policy | None = None,
    earning: bool = True,
) -> LedgerResult:
    """Credit up to ``delta`` points once per ``key``; ``policy`` applies caps under the lock."""
    if delta < 0:
        raise ValueError("award delta must not be negative; use spend or reverse")
    if found := await _existing(key):
        return found
    return await _with_balance_row(
        member_id,
        lambda: _award(
            member_id,
            event,
            delta,
            key=key,
            ref=ref,
            reason=reason,
            counterpart_id=counterpart_id,
            item_id=item_id,
            exempt=exempt,
            policy=policy,
            earning=earning,
        ),
    )


async def _award(
    member_id: int,
    event: str,
    delta: int,
    *,
    key: str,
    ref: str,
    reason: str,
    counterpart_id: int | None,
    item_id: int | None,
    exempt: bool,
    policy: Policy | None,
    earning: bool,
) -> LedgerResult:
    try:
        async with in_transaction() as conn:
            bal = await _locked_balance(conn, member_id)
            if await LedgerEntry.filter(idempotency_key=key).using_db(conn).exists():
                raise IntegrityError(key)  # raced: the winner committed while we waited for the lock
            grant = await policy(conn, delta) if policy else Grant(delta)
            amount = max(0, min(grant.amount, delta))
            held = max(0, min(grant.held, delta - amount))
            entry = await _write(
                conn,
                bal,
                member_id=member_id,
                event=event,
                delta=delta,
                granted=amount,
                held=held,
                key=key,
                ref=ref,
                reason=reason or grant.note,
                counterpart_id=counterpart_id,
                item_id=item_id,
                exempt=exempt,
                earning=earning,
                hold_until=grant.hold_until,
            )
    except IntegrityError:
        found = await _existing(key)
        if found is None:
            raise
        return found
    return LedgerResult(entry.id, delta, amount, held, False, bal.balance, grant.note)


Hook = Callable[[BaseDBAsyncClient, LedgerEntry], Awaitable[None]]


async def spend(
    member_id: int,
    amount: int,
    *,
    key: str,
    ref: str = "",
    reason: str = "",
    event: str = "spend",
    hook: Hook | None = None,
) -> LedgerResult:
    """Debit ``amount`` once per ``key``; raises :class:`InsufficientPoints` if not covered.

    ``hook(conn, entry)`` runs in the same transaction (stock, order rows); raising aborts all.
    """
    if amount <= 0:
        raise ValueError("spend amount must be positive")
    if found := await _existing(key):
        return found
    return await _with_balance_row(
        member_id, lambda: _spend(member_id, amount, key=key, ref=ref, reason=reason, event=event, hook=hook)
    )


async def _spend(
    member_id: int, amount: int, *, key: str, ref: str, reason: str, event: str, hook: Hook | None
) -> LedgerResult:
    try:
        async with in_transaction() as conn:
            bal = await _locked_balance(conn, member_id)
            if await LedgerEntry.filter(idempotency_key=key).using_db(conn).exists():
                raise IntegrityError(key)
            if bal.balance < amount:
                raise InsufficientPoints(f"balance {bal.balance} < {amount}")
            entry = await _write(
                conn,
                bal,
                member_id=member_id,
                event=event,
                delta=-amount,
                granted=-amount,
                held=0,
                key=key,
                ref=ref,
                reason=reason,
            )
            if hook:
                await hook(conn, entry)
    except IntegrityError:
        found = await _existing(key)
        if found is None:
            raise
        return found
    return LedgerResult(entry.id, -amount, -amount, 0, False, bal.balance)


async def reverse(entry_id: int, *, reason: str = "", key: str | None = None) -> LedgerResult:
    """Take back exactly what an entry granted (or give back what a spend took), once.

    A held entry loses its hold; one whose hold was released loses the released points too
    (the release is part of what it earned). Releases themselves are not reversible: reverse
    the entry they released."""
    original = await LedgerEntry.get_or_none(id=entry_id)
    if original is None or original.reversal_of_id is not None or original.event == "release":
        raise NotReversible(f"entry {entry_id} cannot be reversed")
    key = key or key_of("rev", original.id)
    if found := await _existing(key):
        return found
    await _ensure_balance(original.member_id)
    try:
        async with in_transaction() as conn:
            bal = await _locked_balance(conn, original.member_id)  # serialises with release()
            if await LedgerEntry.filter(reversal_of_id=original.id).using_db(conn).exists():
                raise IntegrityError(key)
            released = (
                original.held > 0
                and await LedgerEntry.filter(idempotency_key=key_of("release", original.id)).using_db(conn).exists()
            )
            granted, held = (original.granted + original.held, 0) if released else (original.granted, original.held)
            entry = await _write(
                conn,
                bal,
                member_id=original.member_id,
                event="reversal",
                delta=-original.delta,
                granted=-granted,
                held=-held,
                key=key,
                ref=original.ref,
                reason=reason,
                reversal_of=original.id,
                counterpart_id=original.counterpart_id,
                item_id=original.item_id,
                exempt=original.exempt,
                earning=original.earning,
            )
    except IntegrityError:
        found = await _existing(key)
        if found is None:  # reversed earlier under another key
            prior = await LedgerEntry.filter(reversal_of_id=original.id).first()
            if prior is None:
                raise
            found = await _existing(prior.idempotency_key)
            assert found is not None
        return found
    return LedgerResult(entry.id, entry.delta, entry.granted, entry.held, False, bal.balance)


class NotReleasable(Exception):
    """The entry holds nothing, or was reversed (fraud confirmed): nothing to pay out."""


async def release(entry_id: int, reason: str = "released after review") -> LedgerResult:
    """Pay out what an entry held (the hold passed, or a review cleared the member), once."""
    original = await LedgerEntry.get(id=entry_id)
    if original.held <= 0 or original.reversal_of_id is not None:
        raise NotReleasable(f"entry {entry_id} holds nothing")
    key = key_of("release", original.id)
    if found := await _existing(key):
        return found
    try:
        async with in_transaction() as conn:
            bal = await _locked_balance(conn, original.member_id)
            if await LedgerEntry.filter(reversal_of_id=original.id).using_db(conn).exists():
                raise NotReleasable(f"entry {entry_id} was reversed")
            entry = await _write(
                conn,
                bal,
                member_id=original.member_id,
                event="release",
                delta=original.held,
                granted=original.held,
                held=-original.held,
                key=key,
                ref=original.ref,
                reason=reason,
                counterpart_id=original.counterpart_id,
                item_id=original.item_id,
                exempt=True,
                earning=original.earning,
            )
    except IntegrityError:
        found = await _existing(key)
        if found is None:
            raise
        return found
    return LedgerResult(entry.id, entry.delta, entry.granted, entry.held, False, bal.balance)


async def balance_of(member_id: int) -> Balance:
    bal = await Balance.get_or_none(member_id=member_id)
    return bal or Balance(member_id=member_id)


async def move_within(
    conn: BaseDBAsyncClient,
    from_id: int,
    to_id: int,
    *,
    granted: int | None = None,
    held: int | None = None,
    key: str,
    ref: str,
) -> dict[str, int]:
    """Move points between two members inside the caller's transaction (a member merge).

    Two linked entries, nothing rewritten: ``merge_out`` on ``from_id`` and ``merge_in`` on
    ``to_id``, each naming the other as counterpart. Without amounts, everything ``from_id``
    holds moves: its net balance (``balance - debt``, so a debt moves as a negative amount)
    and its held points. Neither entry counts as earning (no leaderboard or cap effect).
    Idempotent per ``key``: a repeat moves nothing and returns what the first did."""
    out_key, in_key = key_of(key, "out"), key_of(key, "in")
    done = await LedgerEntry.filter(idempotency_key=out_key).using_db(conn).first()
    if done is not None:
        return {
            "granted": -done.granted,
            "held": -done.held,
            "out": done.id,
            "in": (await LedgerEntry.get(idempotency_key=in_key, using_db=conn)).id,
        }
    for member_id in sorted({from_id, to_id}):  # one lock order: no deadlock between two merges
        if not await Balance.filter(member_id=member_id).using_db(conn).exists():
            await Balance.create(member_id=member_id, using_db=conn)
    locked = {m: await _locked_balance(conn, m) for m in sorted({from_id, to_id})}
    src, dst = locked[from_id], locked[to_id]
    amount = src.balance - src.debt if granted is None else granted
    pending = src.held if held is None else held
    out = await _write(
        conn,
        src,
        member_id=from_id,
        event="merge_out",
        delta=-(amount + pending),
        granted=-amount,
        held=-pending,
        key=out_key,
        ref=ref,
        reason="member merge",
        counterpart_id=to_id,
        exempt=True,
    )
    inn = await _write(
        conn,
        dst,
        member_id=to_id,
        event="merge_in",
        delta=amount + pending,
        granted=amount,
        held=pending,
        key=in_key,
        ref=ref,
        reason="member merge",
        counterpart_id=from_id,
        exempt=True,
    )
    return {"granted": amount, "held": pending, "out": out.id, "in": inn.id}
