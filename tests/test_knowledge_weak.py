"""The reviewers' 'weak items' list: ranking (Wilson bound, confidence tie-break), the SQL
aggregation over the window, permissions and the CSV download."""

from __future__ import annotations

import csv
import io
import re
from datetime import datetime, timedelta, timezone

from hypothesis import given, settings as hsettings, strategies as st

from bot.core.app_keys import SERVICES
from bot.core.models import AnswerFeedback, Member, TranscriptEntry
from community.knowledge_admin import weak
from community.knowledge_admin.weak import ItemStats, rank, wilson_lower_bound
from community.models import KnowledgeItem
from tests.community_helpers import chat, staff_login

counts = st.integers(min_value=0, max_value=5000)


# --- the pure ranking ------------------------------------------------------------------------


@given(counts, counts)
@hsettings(max_examples=200, deadline=None)
def test_wilson_bound_is_a_probability_below_the_observed_rate(down, up):
    b = wilson_lower_bound(down, down + up)
    assert 0.0 <= b <= 1.0
    if down + up:
        assert b <= down / (down + up) + 1e-12


@given(counts, counts, st.integers(min_value=1, max_value=50))
@hsettings(max_examples=200, deadline=None)
def test_more_downvotes_never_look_better_more_upvotes_never_look_worse(down, up, extra):
    b = wilson_lower_bound(down, down + up)
    assert wilson_lower_bound(down + extra, down + up + extra) >= b
    assert wilson_lower_bound(down, down + up + extra) <= b


@st.composite
def item_lists(draw):  # type: ignore[no-untyped-def]
    n = draw(st.integers(min_value=1, max_value=8))
    conf = st.one_of(st.none(), st.floats(min_value=0.0, max_value=1.0))
    return [
        ItemStats(
            item_id=i + 1,
            up=draw(st.integers(0, 40)),
            down=draw(st.integers(0, 40)),
            answers=draw(st.integers(0, 40)),
            mean_confidence=draw(conf),
        )
        for i in range(n)
    ]


@given(item_lists(), st.data())
@hsettings(max_examples=200, deadline=None)
def test_another_downvote_never_moves_an_item_later(items, data):
    target = data.draw(st.sampled_from(items))
    before = [s.item_id for s in rank(items, 0.85)]
    target.down += 1
    after = [s.item_id for s in rank(items, 0.85)]
    assert target.item_id in after  # a voted item is always listed
    if target.item_id in before:
        assert after.index(target.item_id) <= before.index(target.item_id)
    # the ranked list is ordered by the bound, and only holds listed items
    bounds = [wilson_lower_bound(s.down, s.votes) for s in rank(items, 0.85)]
    assert bounds == sorted(bounds, reverse=True)
    assert all(s.votes or (s.mean_confidence is not None and s.mean_confidence < 0.9) for s in rank(items, 0.85))


def test_few_votes_do_not_dominate_and_ties_go_to_low_confidence():
    one_of_one = ItemStats(item_id=1, down=1)
    thirty_of_hundred = ItemStats(item_id=2, down=30, up=70)
    shaky = ItemStats(item_id=3, answers=4, mean_confidence=0.86)
    shakier = ItemStats(item_id=4, answers=4, mean_confidence=0.855)
    sure = ItemStats(item_id=5, answers=50, mean_confidence=0.97)
    order = [s.item_id for s in rank([one_of_one, sure, shaky, thirty_of_hundred, shakier], 0.85)]
    assert order == [2, 1, 4, 3]


def test_window_days_is_clamped():
    assert [weak.window_days(x) for x in (None, "7", "0", "-3", "9999", "abc", "", " 12 ")] == [
        30,
        7,
        1,
        1,
        365,
        30,
        30,
        12,
    ]


# --- the page, on a real database --------------------------------------------------------------


async def _seed(threshold: float) -> dict[str, int]:
    """Items with known votes and confidences; returns their ids by role."""
    items = await KnowledgeItem.filter(status="published", locale="zh_CN").order_by("id").limit(7)
    ids = {name: it.id for name, it in zip(["bad", "one_down", "shaky", "shakier", "liked", "sure", "retired"], items)}
    retired = items[6]
    retired.status = "retired"
    await retired.save()
    m = await Member.create(display_name="asker")

    async def answers(item_id: int, confs: list[float]) -> None:
        for c in confs:
            await TranscriptEntry.create(
                member_id=m.id, channel="web", direction="out", kind="answer", item_id=item_id, confidence=c, text="a"
            )

    async def votes(item_id: int, up: int, down: int, query: str = "") -> None:
        for i in range(up + down):
            await AnswerFeedback.create(
                member_id=m.id,
                item_id=item_id,
                helpful=i < up,
                query=f"{query} {i}" if query and i >= up else "",
                channel="web",
            )

    await answers(ids["bad"], [0.95, 0.97])
    await votes(ids["bad"], 2, 8, "流量怎么还是不够用")
    await votes(ids["one_down"], 0, 1, "<b>问一下</b>")
    await answers(ids["shaky"], [threshold + 0.02, threshold + 0.02])
    await answers(ids["shakier"], [threshold + 0.01, threshold + 0.01])
    await votes(ids["liked"], 10, 0)
    await answers(ids["sure"], [0.99, 0.98])
    await votes(ids["retired"], 0, 5)
    # picks and "did you mean" offers of the worst item
    await TranscriptEntry.create(
        member_id=m.id, channel="web", direction="out", kind="answer_pick", item_id=ids["bad"], text="a"
    )
    for _ in range(3):
        await TranscriptEntry.create(
            member_id=m.id,
            channel="web",
            direction="out",
            kind="suggest",
            text="?",
            payload={"choices": [f"kb:{ids['bad']}", f"kb:{ids['shaky']}", "none"]},
        )
    # outside a 30-day window: 30 more 👎 on "liked"
    old = await AnswerFeedback.create(member_id=m.id, item_id=ids["liked"], helpful=False, query="很久以前")
    await AnswerFeedback.bulk_create(
        [AnswerFeedback(member_id=m.id, item_id=ids["liked"], helpful=False, query="很久以前") for _ in range(29)]
    )
    await AnswerFeedback.filter(id__gte=old.id).update(created_at=datetime.now(timezone.utc) - timedelta(days=40))
    return ids


def _rows(html: str) -> list[int]:
    return [int(x) for x in re.findall(r'<tr data-item="(\d+)"', html)]


async def _seeded_reviewer(client, login: str) -> tuple[float, dict[str, int]]:
    """The seeded items (at the app's answer threshold), with a reviewer logged in."""
    threshold = client.app[SERVICES].kb.matcher.config.answer_threshold
    ids = await _seed(threshold)
    await staff_login(client, login, ["reviewer"])
    return threshold, ids


async def test_reviewer_sees_items_ranked_weakest_first(client):
    threshold, ids = await _seeded_reviewer(client, "rev-weak")
    resp = await client.get("/admin/knowledge/weak")
    assert resp.status == 200
    html = await resp.text()
    assert _rows(html) == [ids["bad"], ids["one_down"], ids["shakier"], ids["shaky"], ids["liked"]]
    assert f'href="/admin/knowledge/{ids["bad"]}"' in html
    assert "流量怎么还是不够用 9" in html and "流量怎么还是不够用 7" in html
    assert "流量怎么还是不够用 6" not in html  # three most recent only
    assert "<b>问一下</b>" not in html and "&lt;b&gt;问一下&lt;/b&gt; 0" in html  # member text is escaped
    bad_row = html.split(f'<tr data-item="{ids["bad"]}"')[1].split("</tr>")[0]
    assert "<td>3 / 1</td>" in bad_row and "<td>0.96</td>" in bad_row
    assert 'href="/admin/knowledge/weak"' in html  # the nav link for reviewers
    # a longer window takes in the 30 old 👎: "liked" becomes the weakest
    html = await (await client.get("/admin/knowledge/weak?days=60")).text()
    assert _rows(html)[0] == ids["liked"]
    assert 'value="60"' in html
    html = await (await client.get("/admin/knowledge/weak?days=99999")).text()
    assert 'value="365"' in html
    html = await (await client.get("/admin/knowledge/weak?lang=zh_CN")).text()
    assert "待改进条目" in html and "回答阈值（0.85）" in html.replace(f"{threshold:.2f}", "0.85")


async def test_csv_download_has_header_and_rows(client):
    _threshold, ids = await _seeded_reviewer(client, "rev-csv")
    resp = await client.get("/admin/knowledge/weak?format=csv&days=30")
    assert resp.status == 200
    assert resp.headers["Content-Type"].startswith("text/csv")
    assert "knowledge-weak-30d.csv" in resp.headers["Content-Disposition"]
    rows = list(csv.reader(io.StringIO((await resp.read()).decode("utf-8-sig"))))
    assert tuple(rows[0]) == weak.CSV_HEADER
    assert [int(r[0]) for r in rows[1:]] == [ids["bad"], ids["one_down"], ids["shakier"], ids["shaky"], ids["liked"]]
    bad = dict(zip(rows[0], rows[1]))
    assert (bad["helpful"], bad["not_helpful"], bad["answers"], bad["suggested"], bad["picked"]) == (
        "2",
        "8",
        "2",
        "3",
        "1",
    )
    assert bad["unhelpful_rate"] == "0.8000" and 0.4 < float(bad["weakness"]) < 0.8


async def test_agents_and_anonymous_are_kept_out(client):
    resp = await client.get("/admin/knowledge/weak", allow_redirects=False)
    assert resp.status == 302 and "/login" in resp.headers["Location"]
    resp = await client.get("/admin/knowledge/weak?format=csv", allow_redirects=False)
    assert resp.status == 302
    await staff_login(client, "ag-weak", ["agent"])
    resp = await client.get("/admin/knowledge/weak", allow_redirects=False)
    assert resp.status == 403
    html = await (await client.get("/admin/knowledge")).text()
    assert 'href="/admin/knowledge/weak"' not in html  # no link to a page the agent cannot open


async def test_a_real_downvote_from_chat_lands_on_the_list(client):
    """End to end: the bot answers, the member presses 👎, the reviewer sees the question."""
    item = await KnowledgeItem.filter(status="published", locale="zh_CN").order_by("id").first()
    replies = await chat(client, "weak-m1", text=item.title)
    answered = await TranscriptEntry.filter(direction="out", kind="answer").first()
    assert answered is not None and answered.item_id == item.id, replies
    down = [c["action"] for c in replies[0]["choices"] if c["action"].startswith("fb:down:")]
    await chat(client, "weak-m1", action=down[0])
    await staff_login(client, "rev-e2e", ["reviewer"])
    html = await (await client.get("/admin/knowledge/weak")).text()
    assert _rows(html) == [item.id]
    assert item.title in html.split("<tr data-item=")[1]


async def test_suggestion_count_reads_in_chunks_and_says_when_cut_short(client, monkeypatch):
    m = await Member.create(display_name="s")
    await TranscriptEntry.bulk_create(
        [
            TranscriptEntry(
                member_id=m.id,
                channel="web",
                direction="out",
                kind="suggest",
                text="?",
                payload={"choices": [f"kb:{i % 3 + 1}", "kb:x", "none"]},
            )
            for i in range(7)
        ]
    )
    since = datetime.now(timezone.utc) - timedelta(days=1)
    monkeypatch.setattr(weak, "SUGGEST_CHUNK", 2)
    got, cut = await weak._suggested_counts(since)
    assert (dict(got), cut) == ({1: 3, 2: 2, 3: 2}, False)
    monkeypatch.setattr(weak, "SUGGEST_SCAN_LIMIT", 5)
    got, cut = await weak._suggested_counts(since)
    assert sum(got.values()) == 5 and cut is True
