"""The knowledge base as the service uses it: published items in a search index."""
from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable

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
    def __init__(self, config: MatcherConfig | None = None) -> None:
        self.matcher = Matcher(config)

    async def load(self) -> int:
        """(Re)build the index from every published item."""
        items = await KnowledgeItem.filter(status="published").all()
        docs = [to_doc(i) for i in items]
        # building is CPU work: keep the event loop free while it runs
        await asyncio.get_running_loop().run_in_executor(None, self.matcher.build, docs)
        log.info("knowledge index built: %d items", len(docs))
        return len(docs)

    def reindex(self, items: Iterable[KnowledgeItem]) -> None:
        """Apply changed items incrementally (published ones in, others out)."""
        for item in items:
            if item.status == "published":
                self.matcher.upsert(to_doc(item))
            else:
                self.matcher.remove(item.id)

    def decide(self, text: str, locale: str | None) -> Decision:
        return self.matcher.decide(text, locale=locale)

    async def get(self, item_id: int) -> KnowledgeItem | None:
        return await KnowledgeItem.get_or_none(id=item_id, status="published")

    async def localized(self, item: KnowledgeItem, locale: str) -> KnowledgeItem:
        """The same item in the member's locale when we have it."""
        if item.locale == locale:
            return item
        other = await KnowledgeItem.get_or_none(key=item.key, locale=locale, status="published")
        return other or item

    async def by_code(self, code: str, locale: str) -> KnowledgeItem | None:
        items = await KnowledgeItem.filter(sms_code=code.upper(), status="published").all()
        for item in items:
            if item.locale == locale:
                return item
        return items[0] if items else None
