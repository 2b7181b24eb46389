"""The service KPIs as pure functions of plain records.

Nothing here touches storage: ``bot.dashboard.data`` loads a :class:`History`, and
tests build one by hand with known answers. Every figure is a :class:`Ratio`
(numerator / denominator), so "no traffic" is ``None`` rather than a made-up 0 %.
"""

from __future__ import annotations

import math
import re
import unicodedata
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Literal, TypeVar
from zoneinfo import ZoneInfo

# transcript kinds that mark what happened in a conversation (see handlers/ and community/)
ANSWER_KINDS = frozenset({"answer", "answer_pick"})
QUESTION_KINDS = frozenset({"answer", "answer_pick", "suggest", "none"})
PEER_KINDS = frozenset({"help_request", "peer_answer", "accepted", "post", "peer"})
SUGGESTION_KINDS = frozenset({"suggest", "answer_pick"})  # "did you mean" choices, and a picked one
AGENT_KINDS = frozenset({"handover", "human", "ticket", "agent"})  # handed to the inbox; an agent's chat reply
HOTLINE_KINDS = frozenset({"hotline"})  # a hand-off to the phone hotline (no channel records one yet)
HANDON_ACTIONS = ("human", "post")  # inbound button actions that ask for the next layer
REPHRASE_SIMILARITY = 0.3  # token Jaccard at or above which a later question is the same one again

# The funnel, each layer counted from its own events (see ``layers_used``):
#   self_service    the knowledge base replied to a question (answer, suggestions or "no answer")
#   peer            the member took the question to the community (post / help request / peer answer)
#   bot_suggestion  the bot offered "did you mean" choices (or the member picked one)
#   online_agent    the conversation was handed to the agent inbox, or an agent replied in the chat
#   hotline         a hand-off to the phone hotline (kind "hotline"; nothing records one yet: 0)
LAYERS = ("self_service", "peer", "bot_suggestion", "online_agent", "hotline")
PERSON_LAYERS = frozenset({1, 3, 4})  # a person (peer, agent, hotline) was involved
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
    text: str = ""  # inbound free text (for rephrase detection)


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
    _layers: frozenset[int] | None = None  # computed once the conversation is complete

    def kinds(self) -> set[str]:
        return {e.kind for e in self.events if e.direction == "out"}

    def actions(self) -> list[str]:
        return [e.action for e in self.events if e.direction == "in" and e.action]

    def layers_used(self) -> frozenset[int]:
        """The funnel layers (indexes into LAYERS) this conversation used, each from its own events."""
        if self._layers is None:
            kinds, heads = self.kinds(), {a.split(":")[0] for a in self.actions()}
            used = set()
            if kinds & QUESTION_KINDS:
                used.add(0)
            if kinds & PEER_KINDS or "post" in heads:
                used.add(1)
            if kinds & SUGGESTION_KINDS:
                used.add(2)
            if kinds & AGENT_KINDS or "human" in heads:
                used.add(3)
            if kinds & HOTLINE_KINDS:
                used.add(4)
            self._layers = frozenset(used)
        return self._layers

    def depth(self) -> int:
        """The furthest layer of the funnel this conversation reached (index into LAYERS)."""
        used = self.layers_used()
        return max(used) if used else 0

    @property
    def asked(self) -> bool:
        """The member asked something (not just help or a language switch)."""
        return bool(self.layers_used() & ({0} | PERSON_LAYERS))

    @property
    def self_served(self) -> bool:
        """Answered by the knowledge base and never handed to a person (peer, agent, hotline)."""
        return not (self.layers_used() & PERSON_LAYERS) and any(
            e.kind in ANSWER_KINDS for e in self.events if e.direction == "out"
        )


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


_WORD = re.compile(r"[a-z0-9]+")


def question_tokens(text: str) -> frozenset[str]:
    """Words of Latin text and character pairs of Chinese text, for comparing questions."""
    t = unicodedata.normalize("NFKC", text).lower()
    tokens = set(_WORD.findall(t))
    han = [ch for ch in t if "\u4e00" <= ch <= "\u9fff" or "\u3400" <= ch <= "\u4dbf"]
    if len(han) == 1:
        tokens.add(han[0])
    tokens.update(a + b for a, b in zip(han, han[1:]))
    return frozenset(tokens)


def similarity(a: str, b: str) -> float:
    """Jaccard overlap of :func:`question_tokens` (0 = nothing shared, 1 = same tokens)."""
    ta, tb = question_tokens(a), question_tokens(b)
    return len(ta & tb) / len(ta | tb) if ta and tb else 0.0


def _is_question(e: Event) -> bool:
    """Free text a member typed (not a button, a digit answering choices, or a command)."""
    text = e.text.strip()
    return e.direction == "in" and not e.action and bool(text) and not text.isdigit() and not text.startswith("/")


def answer_verdicts(
    events: Sequence[Event], feedback: Iterable[Feedback], window: timedelta, threshold: float = REPHRASE_SIMILARITY
) -> list[tuple[Event, bool]]:
    """Each confident answer and whether it matched, from explicit signals only:

    - the member's 👍 on it (a stored verdict or the button) says it matched, 👎 that it did
      not; a stored verdict decides, otherwise the first button pressed within ``window``;
    - without a verdict, asking the *same* question again within ``window`` (a later typed
      question at least ``threshold`` similar to the one answered) says it did not, and so
      does asking for a person or the community right after it;
    - anything else (silence, a new question on another topic) leaves the answer standing.
    """
    by_member: dict[int, list[Event]] = defaultdict(list)
    for e in events:
        by_member[e.member_id].append(e)
    stored = {f.transcript_id: f.helpful for f in sorted(feedback, key=lambda f: f.at)}
    out: list[tuple[Event, bool]] = []
    for evs in by_member.values():
        evs.sort(key=lambda e: (e.at, e.id))
        for i, ans in enumerate(evs):
            if ans.direction != "out" or ans.kind != "answer":
                continue
            if ans.id in stored:
                out.append((ans, stored[ans.id]))
                continue
            asked = next((e.text for e in reversed(evs[:i]) if _is_question(e)), "")
            end = ans.at + window
            ok = True
            for later in evs[i + 1 :]:
                if later.at > end or later.direction != "in":
                    if later.at > end:
                        break
                    continue
                head = later.action.split(":")
                if (
                    head[0] == "fb"
                    and len(head) > 1
                    and (len(head) < 3 or ans.item_id is None or head[2] == str(ans.item_id))
                ):
                    ok = head[1] != "down"
                    break
                if head[0] in HANDON_ACTIONS:
                    ok = False
                    break
                if _is_question(later):
                    if asked and similarity(asked, later.text) >= threshold:
                        ok = False
                    break  # the next question decides: the same one again, or a new topic
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


def repeat_verdicts(
    tickets: Iterable[TopicTicket], contacts: Iterable[Contact], days: int = 7
) -> list[tuple[TopicTicket, bool]]:
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
    reached: int  # conversations that used this layer
    handon_rate: float | None  # share of these that went on to a later layer


def funnel(convs: Iterable[Conversation]) -> list[FunnelStep]:
    """Per layer: conversations that used it (from its own events), and the share of those
    that went on to a later layer. Layers are not nested: a member may go to the community
    without a suggestion, or to a person without asking the knowledge base first."""
    used = [c.layers_used() for c in convs if c.asked]
    steps = []
    for i, layer in enumerate(LAYERS):
        here = [u for u in used if i in u]
        later = sum(1 for u in here if any(j > i for j in u))
        rate = later / len(here) if here and i + 1 < len(LAYERS) else None
        steps.append(FunnelStep(layer, len(here), rate))
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


def report(
    history: History,
    *,
    start: datetime,
    end: datetime,
    period: Period,
    tz: ZoneInfo,
    window: timedelta,
    gap: timedelta,
    now: datetime,
    repeat_days: int = 7,
    unanswered_limit: int = 20,
) -> Report:
    """Every dashboard figure for [start, end), per period and per channel."""
    in_range: Callable[[datetime], bool] = lambda at: start <= at < end  # noqa: E731
    convs = [c for c in conversations(history.events, gap) if in_range(c.start) and c.asked]
    answers = [(e, ok) for e, ok in answer_verdicts(history.events, history.feedback, window) if in_range(e.at)]
    surveys = [s for s in history.surveys if in_range(s.at)]
    repeats = [(t, r) for t, r in repeat_verdicts(history.tickets, history.contacts, repeat_days) if in_range(t.at)]
    sla = [(t, m) for t, m in sla_verdicts(history.sla, now) if in_range(t.created_at)]

    def row(
        key: str,
        cs: list[Conversation],
        ans: list[tuple[Event, bool]],
        ss: list[Survey],
        rs: list[tuple[TopicTicket, bool]],
    ) -> KpiRow:
        return KpiRow(
            key,
            self_service(cs),
            answer_accuracy(ans),
            satisfaction(ss),
            repeat_inquiry(rs),
            sum(1 for c in cs if c.asked),
        )

    def split(
        key_conv: Callable[[Conversation], str], key_at: Callable[[datetime, str], str], keys: Sequence[str]
    ) -> list[KpiRow]:
        gc = group_by(convs, key_conv)
        ga = group_by(answers, lambda p: key_at(p[0].at, p[0].channel))
        gs = group_by(surveys, lambda s: key_at(s.at, s.channel))
        gr = group_by(repeats, lambda p: key_at(p[0].at, p[0].channel))
        return [row(k, gc.get(k, []), ga.get(k, []), gs.get(k, []), gr.get(k, [])) for k in keys]

    by_period = split(
        lambda c: period_key(c.start, period, tz),
        lambda at, ch: period_key(at, period, tz),
        periods(start, end, period, tz),
    )
    channels = sorted(
        {c.channel for c in convs}
        | {e.channel for e, _ in answers}
        | {s.channel for s in surveys}
        | {t.channel for t, _ in repeats}
    )
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
