"""The channel-independent message model: what comes in, what goes out.

Channel adapters turn their wire format into :class:`Incoming` and render
:class:`Reply` back; handlers only ever see these.
"""

from __future__ import annotations

from bot.core import jsoncodec
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any

MAX_TEXT = 4000  # what one inbound text may carry into the pipeline


@dataclass(frozen=True, slots=True)
class Choice:
    """A tappable option; ``action`` comes back as :attr:`Incoming.action`."""

    label: str
    action: str

    def to_dict(self) -> dict[str, str]:  # dataclasses.asdict deep-copies: 5x slower per reply
        return {"label": self.label, "action": self.action}


@dataclass(frozen=True, slots=True)
class Card:
    """A rich link: news message on WeChat, card on web chat, a link line on SMS."""

    title: str
    description: str = ""
    url: str = ""
    image_url: str = ""

    def to_dict(self) -> dict[str, str]:
        return {"title": self.title, "description": self.description, "url": self.url, "image_url": self.image_url}


@dataclass(slots=True)
class Reply:
    text: str
    choices: list[Choice] = field(default_factory=list)
    cards: list[Card] = field(default_factory=list)
    # what kind of answer this is, for metrics and the transcript (answer, suggest, none, ...)
    kind: str = "text"
    # knowledge item shown, if any, and the match confidence
    item_id: int | None = None
    confidence: float | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "text": self.text,
            "choices": [c.to_dict() for c in self.choices],
            "cards": [c.to_dict() for c in self.cards],
            "kind": self.kind,
            "item_id": self.item_id,
            "confidence": self.confidence,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> "Reply":
        return cls(
            text=data.get("text", ""),
            choices=[Choice(**c) for c in data.get("choices", [])],
            cards=[Card(**c) for c in data.get("cards", [])],
            kind=data.get("kind", "text"),
            item_id=data.get("item_id"),
            confidence=data.get("confidence"),
        )


def replies_to_json(replies: list[Reply]) -> str:
    return jsoncodec.dumps([r.to_dict() for r in replies])


def replies_from_json(raw: str) -> list[Reply]:
    return [Reply.from_dict(d) for d in jsoncodec.loads(raw)]


@dataclass(slots=True)
class Incoming:
    """One inbound message or button press, already verified and parsed by its channel."""

    channel: str
    user: str  # the channel's id of the sender: openid, Telegram user id, E.164 phone, web id
    text: str | None = None
    action: str | None = None
    msg_id: str | None = None  # the channel's message id; retries carry the same one
    chat: str | None = None  # where replies go when not the user (Telegram group)
    display_name: str = ""
    locale_hint: str | None = None  # zh_CN / zh_TW / en from the client, if it says
    event: str | None = None  # subscribe, unsubscribe, start, ... (channel events)
    payload: str | None = None  # deep-link / scene payload (fw_<token>, q_<id>)
    meta: dict[str, Any] = field(default_factory=dict)
    received_at: datetime = field(default_factory=lambda: datetime.now(timezone.utc))

    @property
    def dedup_key(self) -> str | None:
        return f"{self.channel}:{self.msg_id}" if self.msg_id else None

    @property
    def address(self) -> str:
        return self.chat or self.user


@dataclass(slots=True)
class Outgoing:
    """A reply addressed to a channel account, as the outbox stores and sends it."""

    channel: str
    address: str
    reply: Reply
    member_id: int | None = None
    idempotency_key: str | None = None
    purpose: str = "reply"  # reply, agent, notification, offer, broadcast, forward

    @property
    def solicited(self) -> bool:
        """Whether the member asked for it (opt-out does not stop solicited messages)."""
        return self.purpose in ("reply", "agent", "survey")
