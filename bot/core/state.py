"""The conversation state of one member, typed.

What handlers remember between two messages of a member (the last question, what the
conversation awaits, the pending numbered choices, ...) is stored per member as one JSON
object in the :class:`~bot.core.stores.StateStore` (in-process or Redis). This module is the
only place that knows its keys: handlers read and write the attributes of
:class:`ConversationState`, and the "reply 1-3 to pick" protocol is
:meth:`ConversationState.remember_choices` / :meth:`ConversationState.pick`.

The stored JSON keeps the shape earlier versions wrote, so state stored before an upgrade
(and by a worker still on the previous version during a rolling deploy) keeps working:
``from_json`` accepts any object, defaults what is missing or malformed, and keeps keys it does
not know so that ``to_json`` writes them back unchanged.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from bot.core.messages import Card, Choice, Reply
from bot.core.stores import StateStore

# a number typed to pick a choice: a few digits at most (int() refuses 4,300+ digits)
MAX_PICK_DIGITS = 3


@dataclass(slots=True)
class RepeatCounts:
    """How often each knowledge item was answered to the member on ``day`` (service time zone),
    so a repeat contact gets the way to a person; counted per member across channels."""

    day: str
    items: dict[str, int] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class LinkConfirm:
    """An account link the member was asked to confirm (``handlers.link``), until ``until``
    (a POSIX timestamp)."""

    other: int
    via: str
    phone: str = ""
    until: float = 0.0


@dataclass(slots=True)
class ConversationState:
    """One member's conversation state; every field defaults to "nothing remembered"."""

    # the member's last free-text question, and the last one nothing answered
    last_query: str | None = None
    last_unanswered: str | None = None
    # item ids offered as "did you mean" for last_query: only a pick among them teaches the matcher
    offered: list[int] = field(default_factory=list)
    # the @router.state(name) the next free text goes to (stored as "await")
    await_: str | None = None
    # actions of the numbered choices of the last message sent ("reply 1 ..."), see pick()
    choices: list[str] = field(default_factory=list)
    # code of the community question being answered (await_ == "answer")
    answer_q: str | None = None
    # code of the member's last posted community question
    last_question: str | None = None
    # item the member gave a 👎: their next pick is the better answer
    kb_downvoted: int | None = None
    # ticket the survey comment is for (await_ == "survey_comment")
    survey_ticket: int | None = None
    # reward chosen before the upgrade that stopped asking for a typed phone
    redeem_reward: int | None = None
    seen: RepeatCounts | None = None
    # id of the newest contribution notice the member has seen
    notices_seen: int = 0
    link_confirm: LinkConfirm | None = None
    # the rest of a long SMS answer, sent on "show the full text"
    sms_more: Reply | None = None
    # markers of a person owning the conversation, from versions before inbox tickets
    complaint: bool = False
    agent_ticket: int | None = None
    ticket_id: int | None = None
    # keys this version does not know, written back as they were
    extra: dict[str, Any] = field(default_factory=dict)

    # --- the numbered-choices protocol -------------------------------------------------------
    def remember_choices(self, choices: Iterable[Choice | str]) -> None:
        """The choices a later "1", "2", ... picks (their actions); none forgets them.

        Used wherever numbered options go out: the pipeline after a handler, the outbox
        after a send, a forward's rating question."""
        self.choices = [c.action if isinstance(c, Choice) else str(c) for c in choices]

    def pick(self, text: str) -> str | None:
        """The action of the pending choice ``text`` numbers ("2", "２"), else None."""
        text = text.strip()
        if not text.isdecimal() or len(text) > MAX_PICK_DIGITS:
            return None
        n = int(text)
        return self.choices[n - 1] if 1 <= n <= len(self.choices) else None

    def count_answer(self, day: str, item: str) -> int:
        """Count one more answer of ``item`` on ``day``; how many came before it that day."""
        if self.seen is None or self.seen.day != day:
            self.seen = RepeatCounts(day=day)
        earlier = self.seen.items.get(item, 0)
        self.seen.items[item] = earlier + 1
        return earlier

    # --- storage --------------------------------------------------------------------------------
    @classmethod
    def from_json(cls, data: object) -> ConversationState:
        """The state stored as ``data``; never raises. Malformed known keys count as missing;
        unknown keys are kept in ``extra``."""
        state = cls()
        if not isinstance(data, Mapping):
            return state
        for key, value in data.items():
            spec = _FIELDS.get(key) if isinstance(key, str) else None
            if spec is None:
                state.extra[key] = value
                continue
            parsed = spec[1](value)
            if parsed is not _BAD:
                setattr(state, spec[0], parsed)
        return state

    def to_json(self) -> dict[str, Any]:
        """The JSON object to store: the unknown keys as read, and every field that holds
        something (defaults are left out, as earlier versions did)."""
        out = dict(self.extra)
        for key, (attr, _parse, dump) in _FIELDS.items():
            value = getattr(self, attr)
            if value == getattr(_DEFAULT, attr):
                out.pop(key, None)  # a field cleared by a handler wins over a stale raw value
            else:
                out[key] = dump(value)
        return out


async def load_state(store: StateStore, key: str) -> ConversationState:
    """The state stored under ``key`` (``bot.core.stores.member_state_key``)."""
    return ConversationState.from_json(await store.get(key))


async def save_state(store: StateStore, key: str, state: ConversationState, ttl: int) -> None:
    await store.set(key, state.to_json(), ttl)


async def remember_choices_of(store: StateStore, key: str, choices: Iterable[Choice | str], ttl: int) -> None:
    """``remember_choices`` for a member whose message is not being handled right now (the
    outbox's sends, a forward to another number)."""
    state = await load_state(store, key)
    state.remember_choices(choices)
    await save_state(store, key, state, ttl)


# --- tolerant parsing ---------------------------------------------------------------------------
_BAD: Any = object()  # "not a value of this field": the key counts as missing


def _str(v: object) -> Any:
    return v if isinstance(v, str) else _BAD


def _int(v: object) -> Any:
    return v if isinstance(v, int) and not isinstance(v, bool) else _BAD


def _float(v: object) -> Any:
    if isinstance(v, bool) or not isinstance(v, int | float):
        return _BAD
    v = float(v)
    return v if math.isfinite(v) else _BAD


def _truthy(v: object) -> Any:
    return bool(v)  # earlier versions tested the marker's truth, whatever it held


def _ints(v: object) -> Any:
    if not isinstance(v, list):
        return _BAD
    return [i for i in v if _int(i) is not _BAD]


def _actions(v: object) -> Any:
    """Action strings; a choice stored whole (``{"label", "action"}``) counts by its action."""
    if not isinstance(v, list):
        return _BAD
    out: list[str] = []
    for c in v:
        if isinstance(c, Mapping):
            c = c.get("action")
        if not isinstance(c, str):
            return _BAD  # a list with holes would renumber the choices
        out.append(c)
    return out


def _seen(v: object) -> Any:
    if not isinstance(v, Mapping) or not isinstance(v.get("day"), str):
        return _BAD
    items = v.get("items")
    counts = (
        {k: n for k, n in items.items() if isinstance(k, str) and _int(n) is not _BAD}
        if isinstance(items, Mapping)
        else {}
    )
    return RepeatCounts(day=v["day"], items=counts)


def _dump_seen(s: RepeatCounts) -> dict[str, Any]:
    return {"day": s.day, "items": dict(s.items)}


def _link(v: object) -> Any:
    if not isinstance(v, Mapping) or _int(v.get("other")) is _BAD:
        return _BAD
    via, phone, until = _str(v.get("via", "bind")), _str(v.get("phone", "")), _float(v.get("until", 0.0))
    if _BAD in (via, phone, until):
        return _BAD
    return LinkConfirm(other=v["other"], via=via, phone=phone, until=until)


def _dump_link(c: LinkConfirm) -> dict[str, Any]:
    return {"other": c.other, "via": c.via, "phone": c.phone, "until": c.until}


def _reply(v: object) -> Any:
    if not isinstance(v, Mapping):
        return _BAD
    text, kind = _str(v.get("text", "")), _str(v.get("kind", "text"))
    item_id = v.get("item_id")
    confidence = v.get("confidence")
    raw_choices, raw_cards = v.get("choices", []), v.get("cards", [])
    if (
        _BAD in (text, kind)
        or (item_id is not None and _int(item_id) is _BAD)
        or (confidence is not None and _float(confidence) is _BAD)
        or not isinstance(raw_choices, list)
        or not isinstance(raw_cards, list)
    ):
        return _BAD
    choices: list[Choice] = []
    for c in raw_choices:
        if not (isinstance(c, Mapping) and isinstance(c.get("label"), str) and isinstance(c.get("action"), str)):
            return _BAD
        choices.append(Choice(label=c["label"], action=c["action"]))
    cards: list[Card] = []
    for c in raw_cards:
        if not (isinstance(c, Mapping) and isinstance(c.get("title"), str)):
            return _BAD
        parts = {k: c.get(k, "") for k in ("description", "url", "image_url")}
        if not all(isinstance(p, str) for p in parts.values()):
            return _BAD
        cards.append(Card(title=c["title"], **parts))
    return Reply(
        text=text,
        choices=choices,
        cards=cards,
        kind=kind,
        item_id=item_id,
        confidence=None if confidence is None else float(confidence),
    )


def _same(v: Any) -> Any:
    return v


def _copy_list(v: list[Any]) -> list[Any]:
    return list(v)


# stored key -> (attribute, parse, dump); the one list of keys
_FIELDS: dict[str, tuple[str, Callable[[object], Any], Callable[[Any], Any]]] = {
    "last_query": ("last_query", _str, _same),
    "last_unanswered": ("last_unanswered", _str, _same),
    "offered": ("offered", _ints, _copy_list),
    "await": ("await_", _str, _same),
    "choices": ("choices", _actions, _copy_list),
    "answer_q": ("answer_q", _str, _same),
    "last_question": ("last_question", _str, _same),
    "kb_downvoted": ("kb_downvoted", _int, _same),
    "survey_ticket": ("survey_ticket", _int, _same),
    "redeem_reward": ("redeem_reward", _int, _same),
    "seen": ("seen", _seen, _dump_seen),
    "notices_seen": ("notices_seen", _int, _same),
    "link_confirm": ("link_confirm", _link, _dump_link),
    "sms_more": ("sms_more", _reply, lambda r: r.to_dict()),
    "complaint": ("complaint", _truthy, _same),
    "agent_ticket": ("agent_ticket", _int, _same),
    "ticket_id": ("ticket_id", _int, _same),
}
_DEFAULT = ConversationState()
