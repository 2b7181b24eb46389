"""Knowledge lifecycle review fixes: imports record versions and never resurrect a retired
item, version numbers never go backwards, running workers catch up with database changes,
"knowledge wanted" clusters can be resolved, an edit into a taken locale is a 400, and
retiring needs a reason."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

import pytest

from bot.core import storage
from bot.core.app_keys import SERVICES
from bot.core.models import UnansweredQuestion
from bot.staff.auth import create_staff
from community.kb_io import RETIRED_REASON, import_rows, parse_file
from community.knowledge_admin import service
from community.knowledge_admin.models import KnowledgeVersion
from community.models import KnowledgeItem
from tests.community_helpers import NO_ANSWER, chat, csrf, staff_login

CSV_HEAD = "key,locale,title,variants,answer,status\n"


def _csv(tmp_path: Path, body: str, name: str = "kb.csv") -> Path:
    path = tmp_path / name
    path.write_text(CSV_HEAD + body, encoding="utf-8")
    return path


@pytest.fixture
async def db(tmp_path: Path):  # type: ignore[no-untyped-def]
    await storage.open_db(f"sqlite://{tmp_path / 'kb.sqlite3'}", create_schema=True)
    yield
    await storage.close_db()


async def _reviewer(name: str = "rev-lc"):  # type: ignore[no-untyped-def]
    return await create_staff(name, "secret-pass-1", ["reviewer"])


# --- 1. import and versions ------------------------------------------------------------------


async def test_import_records_a_version_per_created_and_updated_item(db, tmp_path: Path) -> None:
    first = _csv(tmp_path, "lc-a,zh_CN,宽带怎么报修,报修宽带,拨打 10000 报修。,\n")
    report = await import_rows(parse_file(first))
    assert report.created == 1
    item = await KnowledgeItem.get(key="lc-a")
    v1 = await KnowledgeVersion.get(item_id=item.id)
    assert (v1.number, v1.state, v1.author, item.version) == (1, "published", "import", 1)
    assert v1.data["answer"] == "拨打 10000 报修。"
    # unchanged rows add nothing; a changed row is version 2 and supersedes version 1
    assert (await import_rows(parse_file(first))).unchanged == 1
    assert await KnowledgeVersion.filter(item_id=item.id).count() == 1
    second = _csv(tmp_path, "lc-a,zh_CN,宽带怎么报修,报修宽带,在 App 里报修。,\n", "b.csv")
    assert (await import_rows(parse_file(second))).updated == 1
    states = dict(await KnowledgeVersion.filter(item_id=item.id).values_list("number", "state"))
    assert states == {1: "superseded", 2: "published"}
    assert (await KnowledgeItem.get(id=item.id)).version == 2


async def test_staff_edit_after_import_numbers_after_it_and_never_goes_back(db, tmp_path: Path) -> None:
    reviewer = await _reviewer()
    await import_rows(parse_file(_csv(tmp_path, "lc-b,zh_CN,话费怎么查,查话费,发送 CXHF。,\n")))
    await import_rows(parse_file(_csv(tmp_path, "lc-b,zh_CN,话费怎么查,查话费,发送 CXHF 到 10086。,\n", "2.csv")))
    item = await KnowledgeItem.get(key="lc-b")
    v = await service.propose(item, {"answer": "App 首页可查话费。"}, "staff:x", submit=True)
    assert v.number == 3
    item = await service.approve(v, reviewer)
    assert item.version == 3
    # an item imported before imports kept versions: version 5, no rows at all
    legacy = await KnowledgeItem.create(key="lc-legacy", title="旧条目", answer="旧答案", version=5)
    v = await service.propose(legacy, {"answer": "新答案"}, "staff:x", submit=True)
    assert v.number == 6
    assert (await service.approve(v, reviewer)).version == 6


async def test_reimport_does_not_resurrect_a_retired_item(db, tmp_path: Path) -> None:
    reviewer = await _reviewer()
    path = _csv(tmp_path, "lc-ok,zh_CN,标题一,,答案一,\nlc-gone,zh_CN,停办的业务,,已停办。,\n")
    await import_rows(parse_file(path))
    gone = await KnowledgeItem.get(key="lc-gone")
    await service.retire(gone, reviewer, "业务停办")
    versions_before = await KnowledgeVersion.filter(item_id=gone.id).count()
    again = await import_rows(parse_file(path))
    assert again.rejected == [(3, f"lc-gone (zh_CN): {RETIRED_REASON}; not re-published")]
    assert again.unchanged == 1
    # an explicit status: published is refused too (bringing it back is a reviewer's decision)
    explicit = _csv(tmp_path, "lc-gone,zh_CN,停办的业务,,又开办了。,published\n", "e.csv")
    assert (await import_rows(parse_file(explicit))).rejected[0][0] == 2
    gone = await KnowledgeItem.get(id=gone.id)
    assert gone.status == "retired" and gone.answer == "已停办。"
    assert await KnowledgeVersion.filter(item_id=gone.id).count() == versions_before
    # a row that keeps it retired is accepted (it does not bring it back)
    kept = _csv(tmp_path, "lc-gone,zh_CN,停办的业务,,已于 2025 年停办。,retired\n", "k.csv")
    report = await import_rows(parse_file(kept))
    assert report.updated == 1 and not report.rejected
    gone = await KnowledgeItem.get(id=gone.id)
    assert gone.status == "retired" and gone.version == versions_before + 1
    assert (await KnowledgeVersion.get(item_id=gone.id, number=gone.version)).state == "retired"


# --- 2. running workers catch up with database changes ---------------------------------------


async def test_running_service_catches_up_with_an_import(client, tmp_path: Path) -> None:
    kb = client.app[SERVICES].kb
    question = "卫星电话套餐怎么办理"
    existing = await KnowledgeItem.get(key="data-balance", locale="zh_CN")
    body = (
        f"lc-sat,zh_CN,{question},卫星电话怎么开通|办卫星电话,请到营业厅办理卫星电话套餐。,\n"
        f"data-balance,zh_CN,{existing.title},{'|'.join(existing.variants)},新的查流量答案。,\n"
    )
    report = await import_rows(parse_file(_csv(tmp_path, body)))
    assert (report.created, report.updated) == (1, 1)
    new = await KnowledgeItem.get(key="lc-sat")
    assert new.id not in kb.matcher  # nothing told the running service yet
    applied = await kb.catch_up()
    assert set(applied) == {new.id, existing.id}
    assert kb.decide(question, "zh_CN").matches[0].item_id == new.id
    assert (await kb.get(existing.id)).answer == "新的查流量答案。"
    replies = await chat(client, "lc-m1", text=question)
    assert "请到营业厅办理卫星电话套餐。" in replies[0]["text"]
    # nothing changed since: nothing applied again (the matcher's cache stays valid)
    assert await kb.catch_up() == []
    # a change written straight to the database (here: retiring) leaves the index too
    await KnowledgeItem.filter(id=new.id).update(status="retired")
    assert await kb.catch_up() == []  # a bulk update does not touch updated_at ...
    new = await KnowledgeItem.get(id=new.id)
    new.status = "retired"
    await new.save()  # ... a save does
    assert await kb.catch_up() == [new.id]
    assert new.id not in kb.matcher and await kb.get(new.id) is None


async def test_watch_loop_applies_changes_and_zero_disables(client) -> None:
    kb = client.app[SERVICES].kb
    assert await asyncio.wait_for(kb.watch(0), 5) is None  # disabled: returns at once (not a loop)
    item = await KnowledgeItem.create(
        key="lc-loop", title="国际漫游怎么开通", answer="发送 KTMY 开通漫游。", variants=["开漫游", "出国漫游"]
    )
    task = asyncio.create_task(kb.watch(0.02))
    try:
        deadline = asyncio.get_running_loop().time() + 10.0
        while item.id not in kb.matcher and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.02)
    finally:
        task.cancel()
        await asyncio.gather(task, return_exceptions=True)
    assert item.id in kb.matcher
    assert kb.decide("国际漫游怎么开通", "zh_CN").matches[0].item_id == item.id


def test_refresh_setting_defaults_to_30_seconds(tmp_path: Path) -> None:
    from tests.conftest import make_settings

    assert make_settings(tmp_path).kb_refresh_seconds == 30
    assert make_settings(tmp_path, kb_refresh_seconds=0).kb_refresh_seconds == 0


# --- 3. knowledge wanted: resolved button ----------------------------------------------------


async def test_reviewer_resolves_a_wanted_cluster(client) -> None:
    await chat(client, "lc-w1", text=NO_ANSWER)
    await chat(client, "lc-w2", text=NO_ANSWER + "？")
    ids = sorted(await UnansweredQuestion.filter(resolved=False).values_list("id", flat=True))
    assert len(ids) == 2
    # agents see the list but neither the button nor the action
    await staff_login(client, "lc-agent", ["agent"])
    html, token = await csrf(client, "/admin/knowledge/wanted")
    assert NO_ANSWER in html and "/admin/knowledge/wanted/resolve" not in html
    resp = await client.post(
        "/admin/knowledge/wanted/resolve",
        data={"csrf_token": token, "ids": ",".join(map(str, ids))},
        allow_redirects=False,
    )
    assert resp.status == 403
    await client.post("/logout", data={"csrf_token": token})
    await staff_login(client, "lc-rev", ["reviewer"])
    html, token = await csrf(client, "/admin/knowledge/wanted")
    posted = re.search(r'name="ids" value="([^"]+)"', html).group(1)
    assert sorted(int(x) for x in posted.split(",")) == ids
    # without the CSRF token nothing happens
    resp = await client.post("/admin/knowledge/wanted/resolve", data={"ids": posted}, allow_redirects=False)
    assert resp.status == 403
    for bad in ("", "1,x", "-3"):
        resp = await client.post(
            "/admin/knowledge/wanted/resolve", data={"csrf_token": token, "ids": bad}, allow_redirects=False
        )
        assert resp.status == 400, bad
    assert await UnansweredQuestion.filter(resolved=True).count() == 0
    resp = await client.post(
        "/admin/knowledge/wanted/resolve", data={"csrf_token": token, "ids": posted}, allow_redirects=False
    )
    assert resp.status == 302 and resp.headers["Location"] == "/admin/knowledge/wanted"
    assert await UnansweredQuestion.filter(resolved=False).count() == 0
    html = await (await client.get("/admin/knowledge/wanted")).text()
    assert NO_ANSWER not in html


# --- 4. an edit into a locale the key already has ---------------------------------------------


async def test_edit_into_a_taken_locale_is_a_400_and_writes_nothing(client) -> None:
    zh = await KnowledgeItem.get(key="data-balance", locale="zh_CN")
    assert await KnowledgeItem.exists(key="data-balance", locale="en")
    versions = await KnowledgeVersion.filter(item_id=zh.id).count()
    await staff_login(client, "lc-rev4", ["reviewer"])
    _html, token = await csrf(client, f"/admin/knowledge/{zh.id}")
    form = {"csrf_token": token, "title": zh.title, "answer": zh.answer, "locale": "en", "submit": "1"}
    resp = await client.post(f"/admin/knowledge/{zh.id}", data=form, allow_redirects=False)
    assert resp.status == 400 and "already exists in en" in await resp.text()
    assert await KnowledgeVersion.filter(item_id=zh.id).count() == versions
    assert (await KnowledgeItem.get(id=zh.id)).locale == "zh_CN"


async def test_approval_into_a_locale_taken_since_is_a_400(client, tmp_path: Path) -> None:
    kb = client.app[SERVICES].kb
    await import_rows(parse_file(_csv(tmp_path, "lc-loc,zh_CN,携号转网怎么办,携转,到营业厅办理。,\n")))
    item = await KnowledgeItem.get(key="lc-loc")
    await kb.catch_up()
    await staff_login(client, "lc-rev5", ["reviewer"])
    _html, token = await csrf(client, f"/admin/knowledge/{item.id}")
    form = {
        "csrf_token": token,
        "title": "How do I port my number?",
        "answer": "Visit a store.",
        "locale": "en",
        "submit": "1",
    }
    resp = await client.post(f"/admin/knowledge/{item.id}", data=form, allow_redirects=False)
    assert resp.status == 302
    pending = await KnowledgeVersion.get(item_id=item.id, state="pending")
    # meanwhile the English item is created by an import
    await import_rows(parse_file(_csv(tmp_path, "lc-loc,en,Number porting,,Visit a store.,\n", "en.csv")))
    resp = await client.post(
        f"/admin/knowledge/versions/{pending.id}/approve", data={"csrf_token": token}, allow_redirects=False
    )
    assert resp.status == 400 and "already exists in en" in await resp.text()
    item = await KnowledgeItem.get(id=item.id)
    assert (item.locale, item.answer, item.status) == ("zh_CN", "到营业厅办理。", "published")
    assert (await KnowledgeVersion.get(id=pending.id)).state == "pending"
    assert await KnowledgeVersion.filter(item_id=item.id, state="published").count() == 1
    assert kb.decide("携号转网怎么办", "zh_CN").matches[0].item_id == item.id


# --- 5. retiring needs a reason -----------------------------------------------------------------


async def test_retire_needs_a_reason_in_the_service_and_the_page(client) -> None:
    item = await KnowledgeItem.get(key="data-balance", locale="zh_CN")
    reviewer = await _reviewer("lc-rev6")
    with pytest.raises(ValueError):
        await service.retire(item, reviewer, "   ")
    await staff_login(client, "lc-rev7", ["reviewer"])
    _html, token = await csrf(client, f"/admin/knowledge/{item.id}")
    resp = await client.post(
        f"/admin/knowledge/{item.id}/retire", data={"csrf_token": token, "reason": " "}, allow_redirects=False
    )
    assert resp.status == 400
    assert (await KnowledgeItem.get(id=item.id)).status == "published"
    assert item.id in client.app[SERVICES].kb.matcher
    assert not await KnowledgeVersion.filter(item_id=item.id, state="retired").exists()
