"""The dashboard page, its CSV exports and /metrics, on real traffic through the API."""

from __future__ import annotations

import csv
import io
from datetime import datetime, timedelta, timezone

from bot.core import storage
from bot.core.app_keys import SERVICES
from bot.dashboard import prom
from bot.dashboard.web import TABLES
from bot.core.models import ChannelAccount, Member, TranscriptEntry, UnansweredQuestion
from bot.staff.auth import create_staff
from tests.community_helpers import chat

QUESTION = "我的流量还剩多少，怎么查？"


async def traffic(client) -> None:  # type: ignore[no-untyped-def]
    """Two members answered (one says 👎), one question nobody could answer."""
    await chat(client, user="d1", text=QUESTION)
    replies = await chat(client, user="d2", text="how do I check my data balance")
    down = next(c["action"] for c in replies[0]["choices"] if c["action"].startswith("fb:down"))
    await chat(client, user="d2", action=down)
    await unanswered(client, "d3", "火星上<b>明天</b>会下雨吗")


async def unanswered(client, user: str, text: str) -> None:  # type: ignore[no-untyped-def]
    """A question the knowledge base could not answer, recorded as the ask handler does
    (written directly so the test does not depend on the matcher's thresholds)."""
    member = await Member.create(display_name=user)
    acc = await ChannelAccount.create(member=member, channel="web", external_id=user)
    await TranscriptEntry.create(member_id=acc.member_id, channel="web", direction="in", text=text, msg_id=f"u-{user}")
    await TranscriptEntry.create(member_id=acc.member_id, channel="web", direction="out", text="…", kind="none")
    await UnansweredQuestion.create(member_id=acc.member_id, channel="web", text=text, normalized=text)


async def staff_login(client, role: str = "agent") -> None:  # type: ignore[no-untyped-def]
    await create_staff("dash", "secret-pass-1", [role])
    resp = await client.post(
        "/login", data={"username": "dash", "password": "secret-pass-1", "next": "/dashboard"}, allow_redirects=False
    )
    assert resp.status == 302


async def test_dashboard_needs_login(client) -> None:
    resp = await client.get("/dashboard", allow_redirects=False)
    assert resp.status == 302 and resp.headers["Location"].startswith("/login")
    assert (await client.get("/dashboard.csv?table=funnel", allow_redirects=False)).status == 302


async def test_dashboard_shows_kpis_definitions_and_escapes(client) -> None:
    await traffic(client)
    await staff_login(client)
    page = await (await client.get("/dashboard")).text()
    # 3 conversations asked something, 2 were answered without a person; 1 of 2 answers got a 👎
    kpi = page.split('id="kpi-self-service"', 1)[1].split("</div></div>", 1)[0] if "</div></div>" in page else page
    assert "66.7%" in kpi
    acc = page.split('id="kpi-accuracy"', 1)[1][:400]
    assert "50.0%" in acc
    assert "火星上&lt;b&gt;明天&lt;/b&gt;会下雨吗" in page and "<b>明天" not in page
    # four KPI charts and the funnel, drawn in the browser by the vendored ECharts from JSON data
    assert page.count('class="chart"') == 5 and 'id="chart-data"' in page
    assert '<script src="/dashboard/static/echarts/echarts.min.js">' in page
    assert "cdn" not in page.lower() and "https://" not in page.split('id="chart-data"', 1)[1]
    lib = await client.get("/dashboard/static/echarts/echarts.min.js")
    assert lib.status == 200 and len(await lib.read()) > 500_000
    en = await (await client.get("/dashboard?lang=en&period=week&days=30")).text()
    assert (
        "Conversations resolved without a person" in en and "30 minutes of silence" in en and "Self-service share" in en
    )
    zh = await (await client.get("/dashboard?lang=zh_CN")).text()
    assert "自助服务占比" in zh and "服务漏斗" in zh


async def test_every_table_exports_csv(client) -> None:
    await traffic(client)
    await staff_login(client)
    for name in TABLES:
        resp = await client.get(f"/dashboard.csv?table={name}&period=day&days=7")
        assert resp.status == 200 and resp.headers["Content-Type"].startswith("text/csv")
        rows = list(csv.reader(io.StringIO((await resp.text()).lstrip("\ufeff"))))
        assert rows and rows[0]
        if name == "by_channel":
            web = next(r for r in rows if r[0] == "web")
            assert web[1] == "3" and web[2] == "0.6667" and web[4] == "0.5000"
        if name == "funnel":
            assert [r[0] for r in rows[1:]] == ["self_service", "peer", "bot_suggestion", "online_agent", "hotline"]
        if name == "unanswered":
            assert rows[1][:2] == ["火星上<b>明天</b>会下雨吗", "1"]
    # a spreadsheet must not run member text as a formula
    await unanswered(client, "d4", "=1+2 火星")
    resp = await client.get("/dashboard.csv?table=unanswered")
    assert "'=1+2 火星" in await resp.text()
    for bad in ("table=nope", "table=funnel&days=0", "table=funnel&days=93", "table=funnel&period=year"):
        assert (await client.get(f"/dashboard.csv?{bad}")).status == 400


async def test_tickets_surveys_and_sla_from_the_inbox(client) -> None:
    if "community.inbox.models" not in storage.MODEL_MODULES:
        return
    from community.inbox.models import Ticket

    await chat(client, user="t1", text=QUESTION)
    acc = await ChannelAccount.get(channel="web", external_id="t1")
    now = datetime.now(timezone.utc)
    await Ticket.create(
        member_id=acc.member_id,
        channel="web",
        reason="human",
        status="closed",
        first_response_due=now + timedelta(minutes=10),
        resolution_due=now + timedelta(hours=1),
        first_response_at=now,
        survey_score=5,
        survey_at=now,
    )
    await chat(client, user="t1", text="流量剩余查询")  # a same-topic contact after the ticket
    await staff_login(client)
    rows = list(
        csv.reader(io.StringIO((await (await client.get("/dashboard.csv?table=by_channel")).text()).lstrip("\ufeff")))
    )
    total = rows[-1]
    assert total[0] == "all" and total[7] == "1.0000" and total[10] == "1.0000"  # satisfied; a repeat inquiry
    sla = await (await client.get("/dashboard.csv?table=sla")).text()
    assert "all,1.0000,1,1" in sla


async def test_metrics_expose_the_dashboard_figures(client) -> None:
    await traffic(client)
    await prom.refresh(client.app[SERVICES].settings)
    body = await (await client.get("/metrics")).text()
    assert 'everycsr_kpi_self_service_share{channel="web"} 0.6666' in body
    assert 'everycsr_kpi_answer_accuracy{channel="all"} 0.5' in body
    assert 'everycsr_funnel_conversations{layer="self_service"} 3.0' in body
    assert "everycsr_unanswered_questions 1.0" in body
    assert "everycsr_dashboard_refreshed_timestamp_seconds" in body
