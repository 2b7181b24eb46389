"""The in-memory knowledge service: answers without database reads, kept in step across workers."""

from __future__ import annotations

import asyncio
from pathlib import Path

from bot.core import storage
from community.knowledge import KnowledgeService
from community.models import KnowledgeItem
from tests.community_helpers import two_workers


async def test_changes_on_one_worker_reach_the_other(tmp_path: Path) -> None:
    await storage.open_db(f"sqlite://{tmp_path / 'k.sqlite3'}", create_schema=True)
    try:
        item = await KnowledgeItem.create(
            key="roam",
            locale="zh_CN",
            title="国际漫游怎么开通",
            answer="发送 KTMY 开通。",
            variants=["开通漫游"],
            sms_code="KTMY",
        )
        async with two_workers() as (a, b):
            await _changes_on_a_reach_b(item, a, b)
    finally:
        await storage.close_db()


async def _changes_on_a_reach_b(item: KnowledgeItem, a: KnowledgeService, b: KnowledgeService) -> None:
    assert (await b.by_code("ktmy", "zh_CN")).id == item.id
    new = await KnowledgeItem.create(
        key="esim", locale="zh_CN", title="eSIM 怎么办理", answer="到营业厅办理。", variants=["办理eSIM"]
    )
    item.status = "retired"
    await item.save()
    a.reindex([new, item])
    deadline = asyncio.get_running_loop().time() + 10.0
    while await b.get(new.id) is None and asyncio.get_running_loop().time() < deadline:
        await asyncio.sleep(0.02)
    assert (await b.get(new.id)).title == "eSIM 怎么办理"
    assert await b.get(item.id) is None and await b.by_code("KTMY", "zh_CN") is None
    assert new.id in b.matcher and item.id not in b.matcher
