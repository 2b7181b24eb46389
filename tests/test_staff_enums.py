"""Stored enum values reach staff pages translated, from one place (bot/web/enums.py)."""

from __future__ import annotations

from bot.core.app_keys import SERVICES
from bot.core.i18n import get_translator
from bot.core.accounts import get_or_create_account
from bot.web.enums import ENUMS, enum_label
from community.inbox import service as inbox
from community.moderation import service as moderation
from tests.community_helpers import csrf, staff_login

SAME_IN_CHINESE = {"VIP", "Telegram", "API"}


def test_every_enum_value_has_a_chinese_name_in_both_scripts() -> None:
    tr = get_translator()
    for kind, values in ENUMS.items():
        for value, msgid in values.items():
            for locale in ("zh_CN", "zh_TW"):
                text = enum_label(lambda m, loc=locale: tr.gettext(loc, m), kind, value)
                assert text and (text != msgid or msgid in SAME_IN_CHINESE), (kind, value, locale)
            assert enum_label(lambda m: tr.gettext("en", m), kind, value) == msgid
    assert enum_label(lambda m: m, "channel", "carrier-pigeon") == "carrier-pigeon"  # unknown: as stored
    assert enum_label(lambda m: m, "nope", None) == ""


async def test_moderation_and_knowledge_pages_show_no_raw_enum_values(client) -> None:
    await moderation.add_word("谣言词", "wildcard", "hold")
    await staff_login(client, "enum-admin", ["admin"])
    page = await (await client.get("/admin/moderation?lang=zh_CN")).text()
    assert "暂扣待审" in page and "通配符" in page and "添加监控词" in page
    for raw in (">hold<", ">wildcard<", ">word_add<", "<option>block</option>"):
        assert raw not in page, raw
    kb = await (await client.get("/admin/knowledge?lang=zh_CN")).text()
    assert "<td>已发布</td>" in kb and "<td>published</td>" not in kb and "<td>简体中文</td>" in kb
    tw = await (await client.get("/admin/knowledge?lang=zh_TW")).text()
    assert "<td>已釋出</td>" in tw and "<td>published</td>" not in tw
    en = await (await client.get("/admin/knowledge?lang=en")).text()
    assert "<td>Published</td>" in en


async def test_staff_errors_are_in_the_readers_language(client) -> None:
    await staff_login(client, "err-admin", ["admin"])
    _, token = await csrf(client, "/inbox")
    account = await get_or_create_account("web", "err1")
    t, _ = await inbox.open_ticket(client.app[SERVICES], account.member_id, "web", "human")
    zh = await client.post(
        f"/inbox/t/{t.id}/assign", data={"csrf_token": token, "staff_id": "x"}, headers={"Accept-Language": "zh-CN"}
    )
    assert zh.status == 400 and await zh.text() == "请选择一位坐席。"
    en = await client.post(
        f"/inbox/t/{t.id}/assign", data={"csrf_token": token, "staff_id": "x"}, headers={"Accept-Language": "en"}
    )
    assert en.status == 400 and await en.text() == "Choose an agent."


async def test_rewards_admin_names_kinds_and_order_statuses(client) -> None:
    from gamification.models import Redemption, Reward

    reward = await Reward.create(name="礼品卡", kind="gift", cost=10, stock=5, per_member_limit=1, face_value=0)
    account = await get_or_create_account("web", "enum-rw")
    await Redemption.create(
        member_id=account.member_id, reward_id=reward.id, cost=10, request_key="enum-rw:1", status="queued"
    )
    await staff_login(client, "rw-admin", ["admin"])
    page = await (await client.get("/admin/rewards?lang=zh_CN")).text()
    assert ">话费充值</option>" in page and ">礼品</option>" in page and "<td>等待人工处理</td>" in page
    for raw in (">topup</option>", ">gift</option>", "<td>queued</td>"):
        assert raw not in page, raw
