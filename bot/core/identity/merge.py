"""Merging two members into one (and undoing it), in one transaction, audited, idempotent.

Which rows belong to a member is read from tortoise's model registry (``Tortoise.apps``):
every model with a foreign key or one-to-one field to ``Member`` is moved, so a domain that
adds a table is merged without anyone remembering to. Models declare, as plain class
attributes, what a blind move would get wrong:

- ``merge_skip = True``: never moved (the merge's own audit, link codes);
- ``merge_by_hook = "<name>"``: moved by the named :class:`MergeHook` (the points ledger
  moves points by new linked entries, nothing rewritten); a merge refuses to run without it;
- ``merge_unique_per_member = (fields...)``: one row per member and these fields (a badge);
- ``merge_member_columns = (columns...)``: plain integer columns holding the member's id,
  unique (a ticket's ``open_key``): re-keyed to the target, or freed if the target has one.

``unique_together`` rules that include the member field, and one-to-one rows, are honoured:
a row that would collide stays with the source and is listed in ``MemberMerge.kept``.
Everything moved is listed in the :class:`MemberMerge` record, so :meth:`Merger.unmerge`
puts exactly that back. Rows written for the target after the merge stay with it, and so do
the member's own later choices: a field of the member row is put back only while it still
holds what the merge wrote (an opt-out, a new phone or a new name given since stands).

The models' shapes (primary key, relations, unique rules) come from tortoise's public
``Model.describe(serializable=False)``, not from its private ``_meta``."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from functools import lru_cache
from typing import Any, Protocol

from tortoise import Tortoise
from tortoise.backends.base.client import BaseDBAsyncClient
from tortoise.exceptions import IntegrityError
from tortoise.models import Model
from tortoise.transactions import in_transaction

from bot.core.identity.models import MemberMerge
from bot.core.models import ChannelAccount, Member
from bot.core.clock import utcnow


class MergeError(Exception):
    """The merge cannot be done (same member, already merged elsewhere, two verified phones)."""


class MergeHook(Protocol):
    """A domain's own way of merging its rows (``name`` matches models' ``merge_by_hook``)."""

    name: str

    async def merge(self, conn: BaseDBAsyncClient, merge_id: int, source_id: int, target_id: int) -> dict[str, Any]: ...

    async def unmerge(
        self, conn: BaseDBAsyncClient, merge_id: int, source_id: int, target_id: int, done: dict[str, Any]
    ) -> None: ...


@dataclass(frozen=True)
class MemberLink:
    """One model field that points at a member."""

    model: type[Model]
    field: str  # the relation's name; the column is ``<field>_id``
    one_to_one: bool
    unique_with: tuple[tuple[str, ...], ...]  # other fields of unique_together rules with it


def registered_models() -> list[type[Model]]:
    """Every model tortoise knows (``Tortoise.apps``: the one ``models`` app)."""
    apps = Tortoise.apps
    return list(apps.get_models_iterable()) if apps else []


@dataclass(frozen=True)
class ModelShape:
    """What the merger needs to know of a model, from its public description."""

    pk: str
    relations: tuple[tuple[str, Any, bool], ...]  # (field, related model, one-to-one)
    unique_together: tuple[tuple[str, ...], ...]

    @property
    def relation_names(self) -> frozenset[str]:
        return frozenset(name for name, _model, _o2o in self.relations)


@lru_cache(maxsize=None)
def _described(model: type[Model]) -> ModelShape:
    desc = model.describe(serializable=False)
    relations = tuple(
        (f["name"], f["python_type"], one_to_one)
        for key, one_to_one in (("fk_fields", False), ("o2o_fields", True))
        for f in desc[key]
    )
    return ModelShape(
        desc["pk_field"]["name"], relations, tuple(tuple(group) for group in desc["unique_together"] or ())
    )


def shape_of(model: type[Model]) -> ModelShape:
    """The model's shape (cached once its relations are resolved, i.e. after ``Tortoise.init``)."""
    shape = _described(model)
    if any(isinstance(related, str) for _name, related, _o2o in shape.relations):
        _described.cache_clear()  # described before the ORM was initialised: not final
    return shape


def member_links() -> list[MemberLink]:
    """Every field of every registered model that refers to a member."""
    out: list[MemberLink] = []
    for model in registered_models():
        shape = shape_of(model)
        for name, related, one_to_one in sorted(shape.relations, key=lambda r: r[0]):
            if related is not Member:
                continue
            uniques = tuple(tuple(f for f in group if f != name) for group in shape.unique_together if name in group)
            out.append(MemberLink(model, name, one_to_one, uniques))
    return out


def _label(model: type[Model]) -> str:
    return model.__name__


def _models_with_columns() -> list[type[Model]]:
    return [m for m in registered_models() if getattr(m, "merge_member_columns", ())]


MEMBER_FIELDS = (
    "display_name",
    "nickname",
    "tags",
    "opted_out",
    "phone",
    "phone_verified_at",
    "status",
    "locale",
    "locale_explicit",
)


def _snapshot(m: Member) -> dict[str, Any]:
    out = {f: getattr(m, f) for f in MEMBER_FIELDS}
    out["phone_verified_at"] = m.phone_verified_at.isoformat() if m.phone_verified_at else None
    return out


def _db_values(fields_: dict[str, Any]) -> dict[str, Any]:
    """Snapshot values as the ORM takes them (``phone_verified_at`` back to a datetime)."""
    out = dict(fields_)
    if "phone_verified_at" in out:
        raw = out["phone_verified_at"]
        out["phone_verified_at"] = datetime.fromisoformat(raw) if raw else None
    return out


def merged_fields(source: dict[str, Any], target: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """What a merge writes on both member rows, from their snapshots before it (JSON values)."""
    into: dict[str, Any] = {
        "tags": sorted(set(target.get("tags") or []) | set(source.get("tags") or [])),
        "opted_out": bool(target.get("opted_out") or source.get("opted_out")),  # a refusal on either stands
        "display_name": target.get("display_name") or source.get("display_name") or "",
        "nickname": target.get("nickname") or source.get("nickname") or "",
    }
    if not target.get("locale_explicit") and source.get("locale_explicit"):
        into.update(locale=source.get("locale"), locale_explicit=True)
    if source.get("phone") and not target.get("phone"):
        into.update(phone=source["phone"], phone_verified_at=source.get("phone_verified_at"))
    return {"source": {"status": "merged", "phone": None, "phone_verified_at": None}, "target": into}


def undo_fields(before: dict[str, Any], merged: dict[str, Any], now: dict[str, Any]) -> dict[str, Any]:
    """The fields an unmerge puts back on one member row: only those that still hold what the
    merge wrote. A value changed since (an opt-out, a new phone, a new name) is the member's
    later choice and stays; tags lose what the merge added and keep what was added since."""
    out: dict[str, Any] = {}
    for name, value in merged.items():
        if name == "phone_verified_at" or before.get(name) == value:
            continue  # moves with the phone / the merge did not change it
        if name == "tags":
            if sorted(now.get("tags") or []) == sorted(value or []):
                out["tags"] = before.get("tags") or []
            else:
                added = set(value or []) - set(before.get("tags") or [])
                out["tags"] = sorted(set(now.get("tags") or []) - added)
        elif name == "phone":
            if now.get("phone") == value:  # the number and its proof go back together
                out.update(phone=before.get("phone"), phone_verified_at=before.get("phone_verified_at"))
        elif now.get(name) == value:
            out[name] = before.get(name)
    return out


class Merger:
    """Merges and unmerges members; ``hooks`` are the domains' own movers (the ledger)."""

    def __init__(self, hooks: list[MergeHook] | tuple[MergeHook, ...] = ()) -> None:
        self.hooks = {h.name: h for h in hooks}

    async def resolve(self, member_id: int) -> int:
        """The member that ``member_id`` now is (following merges)."""
        seen = {member_id}
        while True:
            row = await MemberMerge.get_or_none(active_key=member_id)
            if row is None:
                return member_id
            member_id = row.target_id
            if member_id in seen:  # cannot happen (a target is never merged away while a source)
                return member_id
            seen.add(member_id)

    async def merge(self, source_id: int, target_id: int, *, via: str, actor: str = "") -> MemberMerge:
        """Move everything of ``source_id`` to ``target_id``; a repeat returns the first record."""
        existing = await MemberMerge.get_or_none(active_key=source_id)
        if existing is not None:
            if existing.target_id == await self.resolve(target_id) or existing.target_id == target_id:
                return existing
            raise MergeError(f"member {source_id} is already merged into member {existing.target_id}")
        target_id = await self.resolve(target_id)
        if source_id == target_id:
            raise MergeError("a member cannot be merged into itself")
        links = member_links()
        missing = {
            getattr(link.model, "merge_by_hook")
            for link in links
            if getattr(link.model, "merge_by_hook", None) and getattr(link.model, "merge_by_hook") not in self.hooks
        }
        if missing:
            raise MergeError(f"no merge hook for {sorted(missing)}: refusing to merge")
        try:
            async with in_transaction() as conn:
                record = await self._merge(conn, links, source_id, target_id, via=via, actor=actor)
        except IntegrityError:
            found = await MemberMerge.get_or_none(active_key=source_id)
            if found is None:
                raise
            if found.target_id != target_id:
                raise MergeError(f"member {source_id} is already merged into member {found.target_id}") from None
            return found
        for hook in self.hooks.values():  # after the commit: caches outside the database
            after = getattr(hook, "after_merge", None)
            if after is not None:
                await after(source_id, target_id)
        return record

    async def _merge(
        self, conn: BaseDBAsyncClient, links: list[MemberLink], source_id: int, target_id: int, *, via: str, actor: str
    ) -> MemberMerge:
        # both members locked in one order (PostgreSQL): a concurrent A->B and B->C cannot
        # interleave and strand A's rows on a member that is itself merged away
        locked = {
            m.id: m
            for m in await Member.filter(id__in=sorted({source_id, target_id}))
            .order_by("id")
            .select_for_update()
            .using_db(conn)
        }
        source, target = locked.get(source_id), locked.get(target_id)
        if source is None or target is None:
            raise MergeError("unknown member")
        if await MemberMerge.filter(active_key=target_id).using_db(conn).exists():
            raise MergeError(f"member {target_id} was merged into another member meanwhile")
        if source.phone and target.phone and source.phone != target.phone:
            raise MergeError("both members have verified different phone numbers")
        before = {"source": _snapshot(source), "target": _snapshot(target)}
        merged = merged_fields(before["source"], before["target"])
        record = await MemberMerge.create(
            using_db=conn,
            source_id=source_id,
            target_id=target_id,
            active_key=source_id,
            via=via,
            actor=actor[:64],
            members={**before, "merged": merged},
        )
        moved: dict[str, dict[str, list[Any]]] = {}
        kept: dict[str, dict[str, list[Any]]] = {}
        hooks_done: set[str] = set()
        for link in links:
            model = link.model
            if getattr(model, "merge_skip", False):
                continue
            hook = getattr(model, "merge_by_hook", None)
            if hook:
                hooks_done.add(hook)
                continue
            col = f"{link.field}_id"
            pk = shape_of(model).pk
            rows = await model.filter(**{col: source_id}).using_db(conn).values_list(pk, flat=True)
            if not rows:
                continue
            conflicts = await self._conflicts(conn, link, source_id, target_id)
            go = [r for r in rows if r not in conflicts]
            if go:
                await model.filter(**{f"{pk}__in": go}).using_db(conn).update(**{col: target_id})
                moved.setdefault(_label(model), {})[link.field] = go
            if conflicts:
                kept.setdefault(_label(model), {})[link.field] = sorted(conflicts)
        columns = await self._rekey_columns(conn, source_id, target_id)
        done: dict[str, Any] = {}
        for name in sorted(hooks_done):
            done[name] = await self.hooks[name].merge(conn, record.id, source_id, target_id)
        await self._merge_members(conn, source, target, merged)
        record.moved, record.kept, record.columns, record.hooks = moved, kept, columns, done
        await record.save(using_db=conn, update_fields=["moved", "kept", "columns", "hooks"])
        return record

    async def _conflicts(self, conn: BaseDBAsyncClient, link: MemberLink, source_id: int, target_id: int) -> set[Any]:
        """Source rows that cannot move: the target already has their unique counterpart."""
        model, col, pk = link.model, f"{link.field}_id", shape_of(link.model).pk
        groups = list(link.unique_with)
        per_member = getattr(model, "merge_unique_per_member", ())
        if per_member:
            groups.append(tuple(per_member))
        if link.one_to_one:
            if await model.filter(**{col: target_id}).using_db(conn).exists():
                return set(await model.filter(**{col: source_id}).using_db(conn).values_list(pk, flat=True))
            return set()
        out: set[Any] = set()
        for group in groups:
            cols = [f"{f}_id" if f in shape_of(model).relation_names else f for f in group]
            theirs = {tuple(r) for r in await model.filter(**{col: target_id}).using_db(conn).values_list(*cols)}
            for row in await model.filter(**{col: source_id}).using_db(conn).values_list(pk, *cols):
                if tuple(row[1:]) in theirs:
                    out.add(row[0])
        return out

    async def _rekey_columns(self, conn: BaseDBAsyncClient, source_id: int, target_id: int) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for model in _models_with_columns():
            pk = shape_of(model).pk
            for column in getattr(model, "merge_member_columns"):
                rows = await model.filter(**{column: source_id}).using_db(conn).values_list(pk, flat=True)
                if not rows:
                    continue
                taken = await model.filter(**{column: target_id}).using_db(conn).exists()
                new = None if taken else target_id
                for row_pk in rows:  # unique column: one row at a time
                    await model.filter(**{pk: row_pk}).using_db(conn).update(**{column: new})
                    new = None
                out.setdefault(_label(model), {})[column] = {str(r): source_id for r in rows}
        return out

    async def _merge_members(
        self, conn: BaseDBAsyncClient, source: Member, target: Member, merged: dict[str, dict[str, Any]]
    ) -> None:
        # the source gives up its phone first: the column is unique
        await Member.filter(id=source.id).using_db(conn).update(**_db_values(merged["source"]))
        await Member.filter(id=target.id).using_db(conn).update(**_db_values(merged["target"]))

    async def _unmerge_members(self, conn: BaseDBAsyncClient, record: MemberMerge) -> None:
        """Both member rows as before the merge, except what changed since (:func:`undo_fields`).
        An opt-out given while the accounts were one member binds both after the split."""
        before = record.members
        merged = before.get("merged") or merged_fields(before["source"], before["target"])  # older records
        rows = {
            m.id: m
            for m in await Member.filter(id__in=[record.source_id, record.target_id]).select_for_update().using_db(conn)
        }
        target_now, source_now = _snapshot(rows[record.target_id]), _snapshot(rows[record.source_id])
        target_undo = undo_fields(before["target"], merged["target"], target_now)
        source_undo = undo_fields(before["source"], merged["source"], source_now)
        if target_now["opted_out"] and not merged["target"]["opted_out"]:
            source_undo["opted_out"] = True
        if target_undo:
            await Member.filter(id=record.target_id).using_db(conn).update(**_db_values(target_undo))
        phone = source_undo.get("phone")
        if phone and await Member.filter(phone=phone).exclude(id=record.source_id).using_db(conn).exists():
            # the number is someone else's now (the target kept it as their own): not taken back
            source_undo.pop("phone")
            source_undo.pop("phone_verified_at", None)
        if source_undo:
            await Member.filter(id=record.source_id).using_db(conn).update(**_db_values(source_undo))

    async def unmerge(self, merge_id: int, *, actor: str = "") -> MemberMerge:
        """Put back what a merge moved (idempotent: an undone merge is returned as it is)."""
        async with in_transaction() as conn:
            record = await MemberMerge.filter(id=merge_id).using_db(conn).select_for_update().first()
            if record is None:
                raise MergeError("unknown merge")
            if record.status != "merged":
                return record
            if await MemberMerge.filter(active_key=record.target_id).using_db(conn).exists():
                raise MergeError("the target was merged into another member since: undo that first")
            models = {_label(m): m for m in registered_models()}
            for label, fields_ in record.moved.items():
                model = models[label]
                pk = shape_of(model).pk
                for field, pks in fields_.items():
                    await (
                        model.filter(**{f"{pk}__in": pks, f"{field}_id": record.target_id})
                        .using_db(conn)
                        .update(**{f"{field}_id": record.source_id})
                    )
            for label, cols in record.columns.items():
                model = models[label]
                pk = shape_of(model).pk
                for column, olds in cols.items():
                    for row_pk, old in olds.items():
                        row: list[int | None] = (
                            await model.filter(  # type: ignore[assignment]  # tortoise types flat=True as tuples
                                **{pk: int(row_pk)}
                            )
                            .using_db(conn)
                            .values_list(column, flat=True)
                        )
                        if row and row[0] in (record.target_id, None):  # still as the merge left it
                            await model.filter(**{pk: int(row_pk)}).using_db(conn).update(**{column: old})
            for name, done in record.hooks.items():
                await self.hooks[name].unmerge(conn, record.id, record.source_id, record.target_id, done)
            await self._unmerge_members(conn, record)
            record.status, record.active_key = "unmerged", None
            record.undone_at, record.undone_by = utcnow(), actor[:64]
            await record.save(using_db=conn, update_fields=["status", "active_key", "undone_at", "undone_by"])
        for hook in self.hooks.values():  # after the commit: what depends on both members' rows
            after = getattr(hook, "after_unmerge", None)
            if after is not None:
                await after(record.source_id, record.target_id)
        return record


async def channels_of(member_id: int) -> list[ChannelAccount]:
    return await ChannelAccount.filter(member_id=member_id).order_by("id")
