"""WeChat XML message -> the core :class:`~bot.core.messages.Incoming` (or what to do instead)."""

from __future__ import annotations

from dataclasses import dataclass

from bot.core.messages import Incoming

CHANNEL = "wechat"
# message types we cannot read; they get a polite "I can read text" answer
MEDIA_TYPES = frozenset({"image", "voice", "video", "shortvideo", "location", "link", "file"})
MAX_OPENID = 128


class BadMessage(ValueError):
    """Parsed XML that is not a usable WeChat message (no sender, no type)."""


@dataclass(slots=True)
class Inbound:
    """One callback, classified: an :class:`Incoming` for the pipeline, an unreadable
    media type to answer politely, or an event we acknowledge and ignore."""

    to_user: str  # our Official Account's id (the reply's FromUserName)
    from_user: str  # the member's openid
    msg_type: str
    incoming: Incoming | None = None
    media: str | None = None

    @property
    def is_event(self) -> bool:
        return self.msg_type == "event"


def event_msg_id(msg: dict[str, str]) -> str:
    """WeChat's recommended dedup key for events, which carry no MsgId."""
    return f"ev:{msg.get('FromUserName', '')}:{msg.get('CreateTime', '')}:{msg.get('Event', '').lower()}"


def to_inbound(msg: dict[str, str]) -> Inbound:
    """Classify one decrypted, parsed message; raises :class:`BadMessage` when unusable."""
    user = (msg.get("FromUserName") or "").strip()
    to_user = (msg.get("ToUserName") or "").strip()
    msg_type = (msg.get("MsgType") or "").strip().lower()
    if not user or len(user) > MAX_OPENID or not msg_type:
        raise BadMessage("FromUserName and MsgType are required")
    out = Inbound(to_user=to_user, from_user=user, msg_type=msg_type)
    msg_id = (msg.get("MsgId") or "").strip() or None

    if msg_type == "text":
        text = msg.get("Content", "").strip()
        menu_id = (msg.get("bizmsgmenuid") or "").strip()
        out.incoming = Incoming(
            channel=CHANNEL,
            user=user,
            text=text or None,
            msg_id=msg_id,
            # a tapped weixin://bizmsgmenu link carries its choice's action as the menu id
            action=menu_id[:128] if menu_id else None,
        )
    elif msg_type == "voice" and (msg.get("Recognition") or "").strip():
        out.incoming = Incoming(
            channel=CHANNEL, user=user, text=msg["Recognition"].strip(), msg_id=msg_id, meta={"voice": True}
        )
    elif msg_type in MEDIA_TYPES:
        out.media = msg_type
    elif msg_type == "event":
        out.incoming = _event(msg, user)
    return out


def _event(msg: dict[str, str], user: str) -> Incoming | None:
    event = (msg.get("Event") or "").strip().lower()
    key = (msg.get("EventKey") or "").strip()
    msg_id = event_msg_id(msg)
    if event == "subscribe":
        # subscribing through a parametric QR code: EventKey is "qrscene_<scene>"
        scene = key[len("qrscene_") :] if key.startswith("qrscene_") else ""
        return Incoming(channel=CHANNEL, user=user, event="subscribe", payload=scene or None, msg_id=msg_id)
    if event == "unsubscribe":
        return Incoming(channel=CHANNEL, user=user, event="unsubscribe", msg_id=msg_id, meta={"reason": "unsubscribed"})
    if event == "scan":
        return Incoming(channel=CHANNEL, user=user, event="scan", payload=key or None, msg_id=msg_id)
    if event == "click" and key:
        return Incoming(channel=CHANNEL, user=user, event="click", payload=key[:128], msg_id=msg_id)
    return None  # VIEW, LOCATION reports, template-send reports …: acknowledged, not processed
