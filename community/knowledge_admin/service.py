"""The review workflow: draft -> pending -> published -> retired, with a version per change.

A published item stays live while an edit of it waits for review: the edit is a pending
``KnowledgeVersion`` and only approval copies it onto the item (and into the search index).
Who may do what is checked here too, not only in the web layer: ``approve``, ``reject``
and ``retire`` need a reviewer (admin passes every role check); members never reach them.
"""

from __future__ import annotations

import difflib
import logging
from datetime import datetime, timezone
from typing import Any, Protocol

from tortoise.exceptions import IntegrityError
from tortoise.transactions import in_transaction

from bot.core.i18n import N_

from community.knowledge_admin.models import KnowledgeContribution, KnowledgeVersion
from community.models import KnowledgeItem
from community.review.queue import open_review

log = logging.getLogger(__name__)

EDITABLE = ("title", "variants", "answer", "category", "sms_code", "difficulty", "tags", "is_notice", "locale")


class Staff(Protocol):
    username: str

    def has_role(self, *roles: str) -> bool: ...


class NotAllowed(PermissionError):
    """The actor's role does not allow this step."""


class BadState(ValueError):
    """The version is not in a state this step applies to."""


class LocaleTaken(ValueError):
    """Another item already holds this key in that locale ((key, locale) is unique)."""

    def __init__(self, key: str, locale: str) -> None:
        super().__init__(f"an item with key {key} already exists in {locale}; edit that item instead")


def author_of(staff: Staff) -> str:
    return f"staff:{staff.username}"


def can_approve(staff: Staff | None) -> bool:
    return staff is not None and staff.has_role("reviewer")


def snapshot(item: KnowledgeItem) -> dict[str, Any]:
    return {f: getattr(item, f) for f in EDITABLE}


def _now() -> datetime:
    return datetime.now(timezone.utc)


async def next_number(item: KnowledgeItem) -> int:
    """The number for the item's next version: after its highest version row and after
    ``item.version`` (items imported before imports recorded versions have a version but
    no rows), so numbers never go backwards."""
    last = await KnowledgeVersion.filter(item_id=item.id).order_by("-number").first()
    return max(last.number if last else 0, item.version or 0) + 1


async def add_version(item: KnowledgeItem, **fields: Any) -> KnowledgeVersion:
    """A new version row numbered after the last. The item's row is locked first (FOR
    UPDATE, until the caller's transaction ends), so staff saving the same item at the same
    moment are numbered one after the other instead of clashing on (item, number)."""
    async with in_transaction():
        await KnowledgeItem.select_for_update().filter(id=item.id).first()
        return await KnowledgeVersion.create(item=item, number=await next_number(item), **fields)


async def _check_locale(item: KnowledgeItem, locale: str) -> None:
    """Moving an item into a locale its key already has would break (key, locale)."""
    if locale != item.locale and await KnowledgeItem.filter(key=item.key, locale=locale).exclude(id=item.id).exists():
        raise LocaleTaken(item.key, locale)


async def create_item(
    key: str, data: dict[str, Any], author: str, *, submit: bool, reason: str = "", contribution_id: int | None = None
) -> tuple[KnowledgeItem, KnowledgeVersion]:
    """A new item as a draft (or pending when submitted): not searchable until approved."""
    state = "pending" if submit else "draft"
    async with in_transaction():
        item = await KnowledgeItem.create(key=key, status=state, **data)
        v = await KnowledgeVersion.create(
            item=item,
            number=1,
            data=snapshot(item),
            state=state,
            author=author,
            reason=reason,
            contribution_id=contribution_id,
        )
    return item, v


async def propose(
    item: KnowledgeItem,
    data: dict[str, Any],
    author: str,
    *,
    submit: bool,
    reason: str = "",
    contribution_id: int | None = None,
) -> KnowledgeVersion:
    """A new revision of ``item``. An unpublished item takes it at once; a published or
    retired one keeps its live text until a reviewer approves."""
    merged = {**snapshot(item), **{k: v for k, v in data.items() if k in EDITABLE}}
    await _check_locale(item, merged["locale"])
    state = "pending" if submit else "draft"
    async with in_transaction():
        v = await add_version(
            item, data=merged, state=state, author=author, reason=reason, contribution_id=contribution_id
        )
        if item.status in ("draft", "pending"):
            for f, val in merged.items():
                setattr(item, f, val)
            item.status = state
            try:
                await item.save()
            except IntegrityError:  # a concurrent item took the key and locale: the version goes too
                raise LocaleTaken(item.key, item.locale) from None
    return v


async def submit(version: KnowledgeVersion) -> None:
    if version.state != "draft":
        raise BadState("only a draft can be submitted")
    version.state = "pending"
    await version.save()
    item = await KnowledgeItem.get(id=version.item_id)
    if item.status == "draft":
        item.status = "pending"
        await item.save()


async def approve(version: KnowledgeVersion, reviewer: Staff, reason: str = "", kb: Any = None) -> KnowledgeItem:
    """Publish a pending (or draft) revision: it becomes the item's live text."""
    if not can_approve(reviewer):
        raise NotAllowed("approving needs the reviewer role")
    async with in_transaction():
        version = await KnowledgeVersion.select_for_update().get(id=version.id)
        if version.state not in ("pending", "draft"):
            raise BadState(f"this version is {version.state}")
        item = await KnowledgeItem.get(id=version.item_id)
        await _check_locale(item, version.data.get("locale", item.locale))
        for f, val in version.data.items():
            if f in EDITABLE:
                setattr(item, f, val)
        item.status = "published"
        item.version = max(version.number, item.version)
        try:
            await item.save()
        except IntegrityError:  # a concurrent item took the key and locale: nothing is kept
            raise LocaleTaken(item.key, item.locale) from None
        await KnowledgeVersion.filter(item_id=item.id, state="published").update(state="superseded")
        version.state = "published"
        version.decided_by = author_of(reviewer)
        version.decision_reason = reason
        version.decided_at = _now()
        await version.save()
    if kb is not None:
        kb.reindex([item])
    if version.contribution_id:
        await _decide_contribution(version.contribution_id, "approved", reason)
    return item


async def reject(version: KnowledgeVersion, reviewer: Staff, reason: str) -> None:
    if not can_approve(reviewer):
        raise NotAllowed("rejecting needs the reviewer role")
    if not reason.strip():
        raise ValueError("give a reason")
    async with in_transaction():
        version = await KnowledgeVersion.select_for_update().get(id=version.id)
        if version.state not in ("pending", "draft"):
            raise BadState(f"this version is {version.state}")
        version.state = "rejected"
        version.decided_by = author_of(reviewer)
        version.decision_reason = reason
        version.decided_at = _now()
        await version.save()
        item = await KnowledgeItem.get(id=version.item_id)
        if item.status == "pending":
            item.status = "draft"
            await item.save()
    if version.contribution_id:
        await _decide_contribution(version.contribution_id, "rejected", reason)


async def retire(item: KnowledgeItem, reviewer: Staff, reason: str, kb: Any = None) -> None:
    if not can_approve(reviewer):
        raise NotAllowed("retiring needs the reviewer role")
    if not reason.strip():
        raise ValueError("give a reason")
    async with in_transaction():
        item.status = "retired"
        await item.save()
        await add_version(
            item,
            data=snapshot(item),
            state="retired",
            author=author_of(reviewer),
            reason=reason,
            decided_by=author_of(reviewer),
            decision_reason=reason,
            decided_at=_now(),
        )
    if kb is not None:
        kb.reindex([item])


def _lines(data: dict[str, Any]) -> list[str]:
    out = []
    for f in EDITABLE:
        val = data.get(f)
        if isinstance(val, list):
            out.extend(f"{f}: {x}" for x in val) if val else out.append(f"{f}:")
        elif f == "answer":
            out.extend(f"answer: {x}" for x in str(val or "").splitlines() or [""])
        else:
            out.append(f"{f}: {'' if val is None else val}")
    return out


def diff(old: KnowledgeVersion, new: KnowledgeVersion) -> list[str]:
    """Unified diff (difflib) of two versions' fields, one line per field value."""
    return list(
        difflib.unified_diff(
            _lines(old.data), _lines(new.data), fromfile=f"v{old.number}", tofile=f"v{new.number}", lineterm="", n=2
        )
    )


# --- contributions -------------------------------------------------------------------------

_services: Any = None  # bot.core.services.Services, set by web.setup's startup hook


def configure(services: Any) -> None:
    global _services
    _services = services


async def _decide_contribution(contribution_id: int, status: str, reason: str) -> None:
    """Record the outcome, tell the member on their channel, pay points when approved."""
    updated = await KnowledgeContribution.filter(id=contribution_id, status="pending").update(
        status=status, reason=reason, decided_at=_now()
    )
    if not updated:
        return  # already decided: a retry must not notify or pay twice
    c = await KnowledgeContribution.get(id=contribution_id).prefetch_related("member")
    if status == "approved":
        try:  # gamification is another package; a failure there must not undo the approval
            from gamification.service import on_contribution_approved
        except ImportError:  # pragma: no cover - gamification not installed
            on_contribution_approved = None
        if on_contribution_approved is not None:
            try:
                await on_contribution_approved(c.id, c.member_id)
            except Exception:  # noqa: BLE001 - logged, the approval stands
                log.exception("points for contribution %s failed", c.id)
    if _services is None:
        return
    from bot.core.messages import Reply

    tr = _services.translator
    loc = c.member.locale or "zh_CN"
    excerpt = c.text[:40]
    if status == "approved":
        text = tr.gettext(
            loc,
            N_('Thank you! Your contribution "%(text)s" was approved and is now in the knowledge base.'),
            text=excerpt,
        )
    else:
        text = tr.gettext(
            loc, N_('Your contribution "%(text)s" was not accepted: %(reason)s'), text=excerpt, reason=reason
        )
    await _services.outbox.to_member(
        c.member_id,
        Reply(text=text, kind="notification"),
        purpose="notification",
        idempotency_key=f"kbcontrib:{c.id}:{status}",
    )


async def contribute(
    member_id: int, channel: str, text: str, item_id: int | None = None, locale: str = "zh_CN"
) -> KnowledgeContribution:
    """A member's proposal becomes a pending item (first line = question, the rest = answer)
    or, with ``item_id``, a pending edit of that item's answer."""
    text = text.strip()
    lines = [x.strip() for x in text.splitlines() if x.strip()]
    if not lines:
        raise ValueError("empty contribution")
    item = await KnowledgeItem.get_or_none(id=item_id) if item_id else None
    c = await KnowledgeContribution.create(
        member_id=member_id, channel=channel, text=text[:4000], item_id=item.id if item else None
    )
    author = f"member:{member_id}"
    if item is not None:
        await propose(
            item, {"answer": text[:4000]}, author, submit=True, reason="member contribution", contribution_id=c.id
        )
    else:
        title = lines[0][:255]
        answer = "\n".join(lines[1:]) or title
        item, _v = await create_item(
            f"contrib-{c.id}",
            {"title": title, "answer": answer, "locale": locale, "category": "contribution"},
            author,
            submit=True,
            reason="member contribution",
            contribution_id=c.id,
        )
        c.item_id = item.id
        await c.save()
    await open_review("contribution", c, "member contribution", summary=text, created_by=member_id)
    return c


async def pending_count() -> int:
    return await KnowledgeVersion.filter(state="pending").count()


async def notices(limit: int = 5, locale: str | None = None) -> list[KnowledgeItem]:
    """The latest published notices, newest first (the member's locale preferred)."""
    q = KnowledgeItem.filter(is_notice=True, status="published")
    items = await q.order_by("-updated_at").limit(limit * 3)
    if locale:
        own = [i for i in items if i.locale == locale]
        items = own or items
    return items[:limit]
