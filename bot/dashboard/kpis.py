"""The service KPIs as pure functions of plain records.

Nothing here touches storage: ``bot.dashboard.data`` loads a :class:`History`, and
tests build one by hand with known answers. Every figure is a :class:`Ratio`
(numerator / denominator), so "no traffic" is ``None`` rather than a made-up 0 %.
"""
from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, TypeVar
from zoneinfo import ZoneInfo

# transcript kinds that mark what happened in a conversation (see handlers/ and community/)
ANSWER_KINDS = frozenset({"answer", "answer_pick"})
QUESTION_KINDS = frozenset({"answer", "answer_pick", "suggest", "none"})
REPHRASE_KINDS = frozenset({"answer", "suggest", "none"})  # a new free-text question got a reply
PEER_KINDS = frozenset({"help_request", "peer_answer", "accepted", "post", "peer"})
ROBOT_KINDS = frozenset({"offer", "repeat", "proactive", "robot"})
AGENT_KINDS = frozenset({"handover", "human", "ticket"})
HOTLINE_KINDS = frozenset({"agent", "hotline"})
HANDON_ACTIONS = ("human", "post")  # inbound button actions that ask for the next layer

LAYERS = ("self_service", "peer", "robot", "agent", "hotline")
Period = Literal["day", "week"]
T = TypeVar("T")


@dataclass(frozen=True, slots=True)
class Ratio:
    num: int
    den: int

    @property
    def value(self) -> float | None:
        return self.num / self.den if self.den else None

    def __add__(self, other: "Ratio") -> "Ratio":
        return Ratio(self.num + other.num, self.den + other.den)


@dataclass(frozen=True, slots=True)
class Event:
    """One transcript entry (or a synthetic one: an offer impression, a ticket)."""

    id: int
    member_id: int
    channel: str
    direction: str  # in | out
    at: datetime
    kind: str = ""
    action: str = ""
    item_id: int | None = None


@dataclass(frozen=True, slots=True)
class Feedback:
    transcript_id: int
    helpful: bool
    at: datetime


@dataclass(frozen=True, slots=True)
class Survey:
    score: int  # 1..scale
    at: datetime
    channel: str
    scale: int = 5


@dataclass(frozen=True, slots=True)
class TopicTicket:
    """A ticket handed to the hotline, with the topic it was about."""

    id: int
    member_id: int
    channel: str
    at: datetime
    topic: str


@dataclass(frozen=True, slots=True)
class Contact:
    """Any later contact of a member about a topic (a question, another ticket)."""

    member_id: int
    at: datetime
    topic: str
    ref: str = ""  # "ticket:<id>" for tickets, so a ticket is not its own repeat


@dataclass(frozen=True, slots=True)
class SlaTicket:
    id: int
    channel: str
    created_at: datetime
    due_at: datetime  # first response due
    first_response_at: datetime | None


@dataclass(frozen=True, slots=True)
class Unanswered:
    text: str
    normalized: str
    channel: str
    at: datetime


@dataclass(frozen=True, slots=True)
class PointsEntry:
    granted: int  # positive: issued; negative: spent
    event: str
    at: datetime


@dataclass(slots=True)
class Conversation:
    member_id: int
    channel: str  # where it started
    start: datetime
    events: list[Event] = field(default_factory=list)
    _depth: int | None = None  # computed once the conversation is complete

    def kinds(self) -> set[str]:
        return {e.kind for e in self.events if e.direction == "out"}

    def actions(self) -> list[str]:
        return [e.action for e in self.events if e.direction == "in" and e.action]

    def depth(self) -> int:
        """The furthest layer of the funnel this conversation reached (index into LAYERS)."""
        if self._depth is None:
            self._depth = self._compute_depth()
        return self._depth

    def _compute_depth(self) -> int:
        kinds, actions = self.kinds(), self.actions()
        if kinds & HOTLINE_KINDS:
            return 4
        if kinds & AGENT_KINDS or any(a.split(":")[0] == "human" for a in actions):
            return 3
        if kinds & ROBOT_KINDS:
            return 2
        if kinds & PEER_KINDS or any(a.split(":")[0] == "post" for a in actions):
            return 1
        return 0

    @property
    def asked(self) -> bool:
        """The member asked something (not just help or a language switch)."""
        return any(e.kind in QUESTION_KINDS for e in self.events if e.direction == "out") or self.depth() in (1, 3, 4)

    @property
    def self_served(self) -> bool:
        """Answered by the knowledge base and never handed to a person (peer or agent)."""
        return self.depth() in (0, 2) and any(e.kind in ANSWER_KINDS for e in self.events if e.direction == "out")


@dataclass(slots=True)
class History:
    """Everything the dashboard computes from, for one time range."""

    events: list[Event] = field(default_factory=list)
    feedback: list[Feedback] = field(default_factory=list)
    surveys: list[Survey] = field(default_factory=list)
    tickets: list[TopicTicket] = field(default_factory=list)
    contacts: list[Contact] = field(default_factory=list)
    sla: list[SlaTicket] = field(default_factory=list)
    unanswered: list[Unanswered] = field(default_factory=list)
    points: list[PointsEntry] = field(default_factory=list)
    has_surveys: bool = False  # the inbox is installed: "no data" means none yet
    has_tickets: bool = False
    has_points: bool = False


# --- conversations ---------------------------------------------------------------------------


def conversations(events: Iterable[Event], gap: timedelta) -> list[Conversation]:
    """Split each member's events into conversations at silences longer than ``gap``."""
    by_member: dict[int, list[Event]] = defaultdict(list)
    for e in events:
        by_member[e.member_id].append(e)
    out: list[Conversation] = []
    for member_id, evs in by_member.items():
        evs.sort(key=lambda e: (e.at, e.id))
        current: Conversation | None = None
        last_at: datetime | None = None
        for e in evs:
            if e.direction == "in" and (current is None or last_at is None or e.at - last_at > gap):
                current = Conversation(member_id=member_id, channel=e.channel, start=e.at)
                out.append(current)
            if current is None:
                continue  # a message we sent before the member said anything starts nothing
            # replies that come late (an agent's answer hours later) stay with their conversation
            current.events.append(e)
            last_at = e.at
    out.sort(key=lambda c: (c.start, c.member_id))
    return out


def self_service(convs: Iterable[Conversation]) -> Ratio:
    """Conversations resolved without a person ÷ conversations where the member asked something."""
    asked = [c for c in convs if c.asked]
    return Ratio(sum(1 for c in asked if c.self_served), len(asked))


# --- answer match accuracy -------------------------------------------------------------------


def answer_verdicts(events: Sequence[Event], feedback: Iterable[Feedback], window: timedelta) -> list[tuple[Event, bool]]:
    """Each confident answer and whether it held: no 👎, no rephrased question and no
    hand-on (community post, person) from the same member within ``window``."""
    by_member: dict[int, list[Event]] = defaultdict(list)
    for e in events:
        by_member[e.member_id].append(e)
    thumbs_down = {f.transcript_id: f.at for f in feedback if not f.helpful}
    out: list[tuple[Event, bool]] = []
    for evs in by_member.values():
        evs.sort(key=lambda e: (e.at, e.id))
        for i, ans in enumerate(evs):
            if ans.direction != "out" or ans.kind != "answer":
                continue
            end = ans.at + window
            ok = not (ans.id in thumbs_down and thumbs_down[ans.id] <= end)
            for later in evs[i + 1:]:
                if not ok or later.at > end:
                    break
                if later.direction == "in":
                    head = later.action.split(":")
                    if head[0] == "fb" and len(head) > 1 and head[1] == "down" and (
                            len(head) < 3 or ans.item_id is None or head[2] == str(ans.item_id)):
                        ok = False
                    elif head[0] in HANDON_ACTIONS:
                        ok = False
                elif later.kind in REPHRASE_KINDS or later.kind in PEER_KINDS | AGENT_KINDS | HOTLINE_KINDS:
                    ok = False
            out.append((ans, ok))
    out.sort(key=lambda p: (p[0].at, p[0].id))
    return out


def answer_accuracy(verdicts: Iterable[tuple[Event, bool]]) -> Ratio:
    vs = list(verdicts)
    return Ratio(sum(1 for _, ok in vs if ok), len(vs))


# --- satisfaction, repeat inquiries, SLA -------------------------------------------------------


def satisfied(s: Survey) -> bool:
    """4 or 5 on a 5-point scale (the top 40 %, "satisfied" or "very satisfied")."""
    return s.score >= math.ceil(s.scale * 0.8)


def satisfaction(surveys: Iterable[Survey]) -> Ratio:
    ss = list(surveys)
    return Ratio(sum(1 for s in ss if satisfied(s)), len(ss))


def mean_score(surveys: Iterable[Survey]) -> float | None:
    ss = list(surveys)
    return sum(s.score for s in ss) / len(ss) if ss else None


def repeat_verdicts(tickets: Iterable[TopicTicket], contacts: Iterable[Contact],
                    days: int = 7) -> list[tuple[TopicTicket, bool]]:
    """Each hotline ticket and whether its member came back about the same topic within
    ``days`` after it (the hotline did not settle it the first time)."""
    by_member: dict[int, list[Contact]] = defaultdict(list)
    for c in contacts:
        by_member[c.member_id].append(c)
    horizon = timedelta(days=days)
    out = []
    for t in tickets:
        again = any(
            c.topic == t.topic and t.at < c.at <= t.at + horizon and c.ref != f"ticket:{t.id}"
            for c in by_member.get(t.member_id, ())
        )
        out.append((t, again))
    return out


def repeat_inquiry(verdicts: Iterable[tuple[TopicTicket, bool]]) -> Ratio:
    vs = list(verdicts)
    return Ratio(sum(1 for _, again in vs if again), len(vs))


def sla_verdicts(tickets: Iterable[SlaTicket], now: datetime) -> list[tuple[SlaTicket, bool]]:
    """Answered tickets, and open ones already past due; open tickets still in time are
    not decided yet and count nowhere."""
    out = []
    for t in tickets:
        if t.first_response_at is not None:
            out.append((t, t.first_response_at <= t.due_at))
        elif t.due_at < now:
            out.append((t, False))
    return out


def sla_attainment(verdicts: Iterable[tuple[SlaTicket, bool]]) -> Ratio:
    vs = list(verdicts)
    return Ratio(sum(1 for _, met in vs if met), len(vs))


# --- funnel, unanswered, points ----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class FunnelStep:
    layer: str
    reached: int  # conversations that got at least this far
    handon_rate: float | None  # share of these handed on to the next layer


def funnel(convs: Iterable[Conversation]) -> list[FunnelStep]:
    depths = [c.depth() for c in convs if c.asked]
    reached = [sum(1 for d in depths if d >= i) for i in range(len(LAYERS))]
    steps = []
    for i, layer in enumerate(LAYERS):
        nxt = reached[i + 1] if i + 1 < len(LAYERS) else None
        rate = (nxt / reached[i]) if (nxt is not None and reached[i]) else None
        steps.append(FunnelStep(layer, reached[i], rate))
    return steps


@dataclass(frozen=True, slots=True)
class UnansweredRow:
    text: str
    count: int
    last_at: datetime
    channels: tuple[str, ...]


def top_unanswered(rows: Iterable[Unanswered], limit: int = 20) -> list[UnansweredRow]:
    """The questions most often left unanswered, grouped by their normalised text."""
    groups: dict[str, list[Unanswered]] = defaultdict(list)
    for r in rows:
        groups[r.normalized or r.text.strip().lower()].append(r)
    out = []
    for items in groups.values():
        latest = max(items, key=lambda r: r.at)
        out.append(UnansweredRow(latest.text, len(items), latest.at, tuple(sorted({r.channel for r in items}))))
    out.sort(key=lambda r: (-r.count, -r.last_at.timestamp(), r.text))
    return out[:limit]


def points_totals(entries: Iterable[PointsEntry]) -> tuple[int, int]:
    """(issued, redeemed): positive grants (refunds excluded), and points spent on rewards."""
    issued = redeemed = 0
    for e in entries:
        if e.granted > 0 and e.event != "reversal":
            issued += e.granted
        elif e.granted < 0 and e.event in ("spend", "redeem", "redemption"):
            redeemed += -e.granted
    return issued, redeemed


# --- grouping ----------------------------------------------------------------------------------


def period_key(at: datetime, period: Period, tz: ZoneInfo) -> str:
    local = at.astimezone(tz)
    if period == "week":
        year, week, _ = local.isocalendar()
        return f"{year}-W{week:02d}"
    return local.strftime("%Y-%m-%d")


def periods(start: datetime, end: datetime, period: Period, tz: ZoneInfo) -> list[str]:
    """Every period key from start to end, so days without traffic show as empty rows."""
    keys: list[str] = []
    cursor = start
    while cursor < end:
        key = period_key(cursor, period, tz)
        if key not in keys:
            keys.append(key)
        cursor += timedelta(days=1)
    last = period_key(end - timedelta(microseconds=1), period, tz) if end > start else None
    if last and last not in keys:
        keys.append(last)
    return keys


def group_by(items: Iterable[T], key: Callable[[T], str]) -> dict[str, list[T]]:
    out: dict[str, list[T]] = defaultdict(list)
    for item in items:
        out[key(item)].append(item)
    return out


@dataclass(frozen=True, slots=True)
class KpiRow:
    key: str  # period or channel; "all" for the total
    self_service: Ratio
    accuracy: Ratio
    satisfaction: Ratio
    repeat: Ratio
    conversations: int


@dataclass(slots=True)
class Report:
    by_period: list[KpiRow]
    by_channel: list[KpiRow]
    total: KpiRow
    funnel: list[FunnelStep]
    sla: Ratio
    sla_by_channel: dict[str, Ratio]
    unanswered: list[UnansweredRow]
    points_issued: int
    points_redeemed: int
    mean_survey: float | None


def report(history: History, *, start: datetime, end: datetime, period: Period, tz: ZoneInfo,
           window: timedelta, gap: timedelta, now: datetime, repeat_days: int = 7,
           unanswered_limit: int = 20) -> Report:
    """Every dashboard figure for [start, end), per period and per channel."""
    in_range = lambda at: start <= at < end  # noqa: E731
    convs = [c for c in conversations(history.events, gap) if in_range(c.start) and c.asked]
    answers = [(e, ok) for e, ok in answer_verdicts(history.events, history.feedback, window) if in_range(e.at)]
    surveys = [s for s in history.surveys if in_range(s.at)]
    repeats = [(t, r) for t, r in repeat_verdicts(history.tickets, history.contacts, repeat_days) if in_range(t.at)]
    sla = [(t, m) for t, m in sla_verdicts(history.sla, now) if in_range(t.created_at)]

    def row(key: str, cs: list[Conversation], ans: list[tuple[Event, bool]], ss: list[Survey],
            rs: list[tuple[TopicTicket, bool]]) -> KpiRow:
        return KpiRow(key, self_service(cs), answer_accuracy(ans), satisfaction(ss), repeat_inquiry(rs),
                      sum(1 for c in cs if c.asked))

    def split(key_conv: Callable[[Conversation], str], key_at: Callable[[datetime, str], str],
              keys: Sequence[str]) -> list[KpiRow]:
        gc = group_by(convs, key_conv)
        ga = group_by(answers, lambda p: key_at(p[0].at, p[0].channel))
        gs = group_by(surveys, lambda s: key_at(s.at, s.channel))
        gr = group_by(repeats, lambda p: key_at(p[0].at, p[0].channel))
        return [row(k, gc.get(k, []), ga.get(k, []), gs.get(k, []), gr.get(k, [])) for k in keys]

    by_period = split(lambda c: period_key(c.start, period, tz), lambda at, ch: period_key(at, period, tz),
                      periods(start, end, period, tz))
    channels = sorted({c.channel for c in convs} | {e.channel for e, _ in answers} | {s.channel for s in surveys}
                      | {t.channel for t, _ in repeats})
    by_channel = split(lambda c: c.channel, lambda at, ch: ch, channels)
    sla_groups = group_by(sla, lambda p: p[0].channel)
    issued, redeemed = points_totals(p for p in history.points if in_range(p.at))
    return Report(
        by_period=by_period,
        by_channel=by_channel,
        total=row("all", convs, answers, surveys, repeats),
        funnel=funnel(convs),
        sla=sla_attainment(sla),
        sla_by_channel={k: sla_attainment(v) for k, v in sorted(sla_groups.items())},
        unanswered=top_unanswered((u for u in history.unanswered if in_range(u.at)), unanswered_limit),
        points_issued=issued,
        points_redeemed=redeemed,
        mean_survey=mean_score(surveys),
    )

