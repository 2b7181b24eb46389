"""Each KPI from a constructed history with known answers, edge cases included."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone
from zoneinfo import ZoneInfo

from hypothesis import given
from hypothesis import strategies as st

from bot.dashboard import kpis
from bot.dashboard.kpis import (
    Contact,
    Event,
    Feedback,
    History,
    PointsEntry,
    Ratio,
    SlaTicket,
    Survey,
    TopicTicket,
    Unanswered,
)

TZ = ZoneInfo("Asia/Shanghai")
T0 = datetime(2026, 11, 2, 2, 0, tzinfo=timezone.utc)  # Monday 10:00 Shanghai
GAP = timedelta(minutes=30)
WINDOW = timedelta(minutes=10)
_ids = iter(range(1, 10_000))


def ev(
    member: int,
    minutes: float,
    direction: str,
    kind: str = "",
    action: str = "",
    item: int | None = None,
    channel: str = "web",
    text: str = "",
) -> Event:
    return Event(
        id=next(_ids),
        member_id=member,
        channel=channel,
        direction=direction,
        at=T0 + timedelta(minutes=minutes),
        kind=kind,
        action=action,
        item_id=item,
        text=text,
    )


def qa(
    member: int,
    minutes: float,
    kind: str = "answer",
    item: int | None = 1,
    channel: str = "web",
    text: str = "流量怎么查",
) -> list[Event]:
    """A question and the bot's reply a second later."""
    return [
        ev(member, minutes, "in", channel=channel, text=text),
        ev(member, minutes + 1 / 60, "out", kind, item=item, channel=channel),
    ]


def test_ratio_and_no_traffic() -> None:
    assert Ratio(0, 0).value is None and Ratio(1, 4).value == 0.25 and (Ratio(1, 2) + Ratio(1, 2)).value == 0.5
    midnight = T0 - timedelta(hours=10)  # 00:00 Shanghai
    rep = kpis.report(
        History(), start=midnight, end=midnight + timedelta(days=2), period="day", tz=TZ, window=WINDOW, gap=GAP, now=T0
    )
    assert [r.key for r in rep.by_period] == ["2026-11-02", "2026-11-03"]
    assert all(
        r.self_service.value is None and r.accuracy.value is None and r.conversations == 0 for r in rep.by_period
    )
    assert rep.by_channel == [] and rep.total.satisfaction.value is None and rep.total.repeat.value is None
    assert [s.reached for s in rep.funnel] == [0, 0, 0, 0, 0] and all(s.handon_rate is None for s in rep.funnel)
    assert rep.sla.value is None and rep.unanswered == [] and (rep.points_issued, rep.points_redeemed) == (0, 0)


def test_conversations_split_on_silence_and_ignore_unsolicited_first() -> None:
    events = [
        ev(1, -5, "out", "notification"),  # before the member said anything: no conversation
        *qa(1, 0),
        *qa(1, 20),  # 20 min later: same conversation
        *qa(1, 60),  # 39 min of silence: a new one
        ev(1, 200, "out", "agent"),  # a late agent reply stays with the last conversation
    ]
    convs = kpis.conversations(events, GAP)
    assert [len(c.events) for c in convs] == [4, 3]
    assert convs[1].depth() == 3  # an agent reply is the online-agent layer, not the hotline


def test_self_service_share() -> None:
    events = [
        *qa(1, 0),  # answered, nothing else: self-served
        *qa(2, 0, kind="none"),
        ev(2, 1, "in", action="post"),
        ev(2, 1.1, "out", "help_request"),  # to peers
        *qa(3, 0),
        ev(3, 2, "in", action="human"),
        ev(3, 2.1, "out", "handover"),  # to a person
        *qa(4, 0),
        ev(4, 0.5, "out", "offer"),  # offer shown: the robot layer, still without a person
        ev(5, 0, "in", action="lang:en"),
        ev(5, 0.1, "out", "command"),  # asked nothing: not counted
    ]
    convs = kpis.conversations(events, GAP)
    assert kpis.self_service(convs) == Ratio(2, 4)


def test_answer_accuracy_window_thumbs_rephrase_and_handon() -> None:
    a_ok = qa(1, 0)  # nothing follows
    a_down = qa(2, 0) + [ev(2, 2, "in", action="fb:down:1"), ev(2, 2.1, "out", "feedback")]
    a_up = qa(3, 0) + [ev(3, 2, "in", action="fb:up:1"), ev(3, 2.1, "out", "feedback")]
    a_rephrase = qa(4, 0) + qa(4, 3, kind="suggest", text="怎么查流量")  # the same question again
    a_late = qa(5, 0) + qa(5, 11, kind="none")  # the rephrase comes after the window
    a_handon = qa(6, 0) + [ev(6, 5, "in", action="human"), ev(6, 5.1, "out", "handover")]
    a_pick = qa(7, 0, kind="answer_pick")  # a picked suggestion is not a confident answer
    a_record = qa(8, 0)  # 👎 stored as AnswerFeedback only
    events = a_ok + a_down + a_up + a_rephrase + a_late + a_handon + a_pick + a_record
    feedback = [
        Feedback(transcript_id=a_record[1].id, helpful=False, at=a_record[1].at + timedelta(minutes=3)),
        Feedback(transcript_id=a_ok[1].id, helpful=True, at=a_ok[1].at),
    ]
    verdicts = kpis.answer_verdicts(events, feedback, WINDOW)
    by_member = {e.member_id: ok for e, ok in verdicts}
    # the later suggest / none replies are not confident answers themselves
    assert by_member == {1: True, 2: False, 3: True, 4: False, 5: True, 6: False, 8: False}
    assert kpis.answer_accuracy(verdicts) == Ratio(3, 7)


def test_satisfaction_top_two_boxes() -> None:
    surveys = [Survey(s, T0, "web") for s in (5, 4, 3, 1)] + [Survey(9, T0, "sms", scale=10)]
    assert kpis.satisfaction(surveys) == Ratio(3, 5)
    assert kpis.mean_score(surveys[:4]) == 3.25 and kpis.mean_score([]) is None


def test_repeat_inquiry_same_topic_within_seven_days_after() -> None:
    t1 = TopicTicket(1, member_id=1, channel="web", at=T0, topic="cat:data")
    t2 = TopicTicket(2, member_id=2, channel="sms", at=T0, topic="cat:billing")
    t3 = TopicTicket(3, member_id=3, channel="web", at=T0, topic="cat:data")
    t4 = TopicTicket(4, member_id=4, channel="web", at=T0, topic="cat:data")
    contacts = [
        Contact(1, T0, "cat:data", ref="ticket:1"),  # the ticket itself
        Contact(1, T0 + timedelta(days=3), "cat:data"),  # came back: repeat
        Contact(2, T0 + timedelta(days=2), "cat:data"),  # other topic: not a repeat
        Contact(3, T0 + timedelta(days=7, seconds=1), "cat:data"),  # too late
        Contact(4, T0 - timedelta(days=1), "cat:data"),  # before the ticket
    ]
    verdicts = kpis.repeat_verdicts([t1, t2, t3, t4], contacts)
    assert [again for _, again in verdicts] == [True, False, False, False]
    assert kpis.repeat_inquiry(verdicts) == Ratio(1, 4)


def test_sla_attainment_undecided_tickets_do_not_count() -> None:
    now = T0 + timedelta(hours=2)
    due = T0 + timedelta(hours=1)
    tickets = [
        SlaTicket(1, "web", T0, due, T0 + timedelta(minutes=30)),  # met
        SlaTicket(2, "web", T0, due, T0 + timedelta(minutes=90)),  # late
        SlaTicket(3, "sms", T0, due, None),  # open and overdue: missed
        SlaTicket(4, "sms", T0, now + timedelta(hours=1), None),  # open, still in time: undecided
    ]
    assert kpis.sla_attainment(kpis.sla_verdicts(tickets, now)) == Ratio(1, 3)


def test_funnel_counts_each_layer_from_its_own_events() -> None:
    events = (
        qa(1, 0)
        + qa(2, 0)
        + qa(3, 0, kind="none")
        + [ev(3, 1, "out", "help_request")]
        + qa(4, 0)
        + [ev(4, 1, "out", "handover"), ev(4, 30, "out", "agent")]
        + qa(5, 0, kind="suggest")
        + [ev(5, 1, "in", action="kb:1"), ev(5, 1.1, "out", "answer_pick")]
        + qa(6, 0)
        + [ev(6, 0.5, "out", "offer")]
    )  # an offer is marketing, not a layer
    steps = kpis.funnel(kpis.conversations(events, GAP))
    # layers used: 1 {self}, 2 {self}, 3 {self, peer}, 4 {self, agent}, 5 {self, suggestion}, 6 {self}
    assert [(s.layer, s.reached) for s in steps] == [
        ("self_service", 6),
        ("peer", 1),
        ("bot_suggestion", 1),
        ("online_agent", 1),
        ("hotline", 0),
    ]
    # went on to a later layer: self 3 of 6 (members 3, 4, 5); the others went nowhere further
    assert [s.handon_rate for s in steps] == [0.5, 0.0, 0.0, 0.0, None]


def test_top_unanswered_groups_by_normalised_text() -> None:
    rows = [
        Unanswered("火星下雨吗", "火星下雨吗", "web", T0),
        Unanswered("火星下雨吗？", "火星下雨吗", "sms", T0 + timedelta(1)),
        Unanswered("怎么退订", "怎么退订", "web", T0),
    ]
    top = kpis.top_unanswered(rows, limit=5)
    assert [(r.text, r.count, r.channels) for r in top] == [
        ("火星下雨吗？", 2, ("sms", "web")),
        ("怎么退订", 1, ("web",)),
    ]
    assert len(kpis.top_unanswered(rows, limit=1)) == 1


def test_points_issued_and_redeemed() -> None:
    entries = [
        PointsEntry(10, "answer_accepted", T0),
        PointsEntry(5, "forward", T0),
        PointsEntry(-8, "spend", T0),
        PointsEntry(8, "reversal", T0),
        PointsEntry(-3, "expiry", T0),
    ]
    assert kpis.points_totals(entries) == (15, 8)


def test_report_per_day_week_and_one_channel_only() -> None:
    day2 = 24 * 60
    events = qa(1, 0) + qa(2, 0) + [ev(2, 1, "in", action="fb:down:1")] + qa(3, day2, kind="none")
    history = History(
        events=events, surveys=[Survey(5, T0, "web"), Survey(2, T0 + timedelta(days=1), "web")], has_surveys=True
    )
    rep = kpis.report(
        history,
        start=T0 - timedelta(hours=10),
        end=T0 + timedelta(days=2),
        period="day",
        tz=TZ,
        window=WINDOW,
        gap=GAP,
        now=T0 + timedelta(days=2),
    )
    by_day = {r.key: r for r in rep.by_period}
    assert by_day["2026-11-02"].self_service == Ratio(2, 2) and by_day["2026-11-02"].accuracy == Ratio(1, 2)
    assert by_day["2026-11-03"].self_service == Ratio(0, 1) and by_day["2026-11-03"].satisfaction == Ratio(0, 1)
    assert [r.key for r in rep.by_channel] == ["web"]  # one channel only: one row, same as the total
    web = rep.by_channel[0]
    assert (web.self_service, web.accuracy, web.satisfaction) == (
        rep.total.self_service,
        rep.total.accuracy,
        rep.total.satisfaction,
    )
    assert rep.total.self_service == Ratio(2, 3) and rep.total.satisfaction == Ratio(1, 2)
    weekly = kpis.report(
        history,
        start=T0 - timedelta(hours=10),
        end=T0 + timedelta(days=2),
        period="week",
        tz=TZ,
        window=WINDOW,
        gap=GAP,
        now=T0,
    )
    assert [r.key for r in weekly.by_period] == ["2026-W45"] and weekly.by_period[0].conversations == 3


def test_per_channel_split() -> None:
    events = qa(1, 0, channel="sms") + qa(2, 0, channel="wechat", kind="none")
    rep = kpis.report(
        History(events=events),
        start=T0,
        end=T0 + timedelta(days=1),
        period="day",
        tz=TZ,
        window=WINDOW,
        gap=GAP,
        now=T0,
    )
    assert {r.key: r.self_service for r in rep.by_channel} == {"sms": Ratio(1, 1), "wechat": Ratio(0, 1)}


@given(
    st.lists(
        st.tuples(
            st.integers(1, 5),
            st.integers(0, 600),
            st.sampled_from(["answer", "answer_pick", "suggest", "none", "handover", "help_request", "agent", "offer"]),
        ),
        max_size=40,
    )
)
def test_kpis_are_proportions_and_funnel_narrows(items: list[tuple[int, int, str]]) -> None:
    events = [e for m, minute, kind in items for e in qa(m, minute, kind=kind)]
    convs = kpis.conversations(events, GAP)
    share = kpis.self_service(convs)
    assert 0 <= share.num <= share.den == sum(1 for c in convs if c.asked)
    acc = kpis.answer_accuracy(kpis.answer_verdicts(events, [], WINDOW))
    assert 0 <= acc.num <= acc.den == sum(1 for _, _, k in items if k == "answer")
    steps = kpis.funnel(convs)
    assert all(0 <= s.reached <= share.den for s in steps)
    assert all(s.handon_rate is None or 0 <= s.handon_rate <= 1 for s in steps)
