"""The knowledge base as the service uses it: published items in a search index."""
from __future__ import annotations

import asyncio
import logging
import uuid
from collections.abc import Iterable
from typing import Any

from community.models import KnowledgeItem
from community.search import Decision, KBDoc, Matcher, MatcherConfig

log = logging.getLogger(__name__)


def to_doc(item: KnowledgeItem) -> KBDoc:
    return KBDoc(
        id=item.id,
        title=item.title,
        variants=tuple(item.variants or ()),
        answer=item.answer,
        category=item.category,
        sms_code=item.sms_code,
        locale=item.locale,
        tags=tuple(item.tags or ()),
    )


class KnowledgeService:
    """Published items in memory (index + records), so answering needs no database read.

    Changes go through :meth:`reindex`; with a fan-out attached (:meth:`follow`), other
    worker processes reload the changed items too.
    """

    def __init__(self, config: MatcherConfig | None = None) -> None:
        self.matcher = Matcher(config)
        self._items: dict[int, KnowledgeItem] = {}
        self._by_key: dict[tuple[str, str], int] = {}
        self._fanout: Any = None
        self._origin = uuid.uuid4().hex

    def _cache(self, item: KnowledgeItem) -> None:
        self._drop(item.id)
        if item.status == "published":
            self._items[item.id] = item
            self._by_key[(item.key, item.locale)] = item.id

    def _drop(self, item_id: int) -> None:
        old = self._items.pop(item_id, None)
        if old is not None and self._by_key.get((old.key, old.locale)) == item_id:
            del self._by_key[(old.key, old.locale)]

    async def load(self) -> int:
        """(Re)build the index from every published item."""
        items = await KnowledgeItem.filter(status="published").all()
        docs = [to_doc(i) for i in items]
        # building is CPU work: keep the event loop free while it runs
        await asyncio.get_running_loop().run_in_executor(None, self.matcher.build, docs)
        self._items.clear()
        self._by_key.clear()
        for item in items:
            self._cache(item)
        log.info("knowledge index built: %d items", len(docs))
        return len(docs)

    def reindex(self, items: Iterable[KnowledgeItem]) -> None:
        """Apply changed items incrementally (published ones in, others out)."""
        ids = []
        for item in items:
            self._apply(item)
            ids.append(item.id)
        if self._fanout is not None and ids:
            task = asyncio.get_running_loop().create_task(
                self._fanout.publish(KB_TOPIC, {"ids": ids, "origin": self._origin})
            )
            task.add_done_callback(_log_failure)

    def _apply(self, item: KnowledgeItem) -> None:
        if item.status == "published":
            self.matcher.upsert(to_doc(item))
        else:
            self.matcher.remove(item.id)
        self._cache(item)

    async def refresh(self, ids: Iterable[int]) -> None:
        """Reload items another worker changed."""
        ids = list(ids)
        found = {i.id: i for i in await KnowledgeItem.filter(id__in=ids)}
        for item_id in ids:
            if item_id in found:
                self._apply(found[item_id])
            else:
                self.matcher.remove(item_id)
                self._drop(item_id)

    async def follow(self, fanout: Any) -> None:
        """Publish our changes on ``fanout`` and apply everyone else's (runs until cancelled)."""
        self._fanout = fanout
        async with fanout.subscribe(KB_TOPIC) as sub:
            async for event in sub:
                if event.get("origin") != self._origin:
                    try:
                        await self.refresh(int(i) for i in event.get("ids", []))
                    except Exception:  # keep following; the next full load repairs
                        log.exception("knowledge refresh failed")

    def decide(self, text: str, locale: str | None) -> Decision:
        return self.matcher.decide(text, locale=locale)

    async def get(self, item_id: int) -> KnowledgeItem | None:
        return self._items.get(item_id)

    async def localized(self, item: KnowledgeItem, locale: str) -> KnowledgeItem:
        """The same item in the member's locale when we have it."""
        if item.locale == locale:
            return item
        other = self._by_key.get((item.key, locale))
        return self._items[other] if other is not None else item

    async def by_code(self, code: str, locale: str) -> KnowledgeItem | None:
        code = code.upper()
        items = [i for i in self._items.values() if i.sms_code == code]
        for item in items:
            if item.locale == locale:
                return item
        return items[0] if items else None


KB_TOPIC = "knowledge"


def _log_failure(task: "asyncio.Task[None]") -> None:
    if not task.cancelled() and task.exception():
        log.warning("knowledge change not published: %s", task.exception())
