"""One place that names stored enum values for staff pages, in the reader's language.

Templates call ``enum_label("kind", value)`` (installed by ``bot.web.render``); a value not
listed here is shown as stored, so a new value degrades to its code rather than an error.
"""

from __future__ import annotations

from collections.abc import Callable

from bot.core.i18n import N_

ENUMS: dict[str, dict[str, str]] = {
    "ticket_status": {
        "live": N_("Open or claimed"),
        "open": N_("Waiting for an agent"),
        "claimed": N_("Claimed"),
        "closed": N_("Closed"),
        "all": N_("All"),
    },
    "ticket_reason": {
        "unanswered": N_("No answer found"),
        "unsatisfied": N_("Unsatisfied"),
        "complaint": N_("Complaint"),
        "human": N_("Asked for a person"),
        "deadline": N_("Community deadline passed"),
        "vip": N_("VIP"),
        "repeat": N_("Repeat contact"),
    },
    "channel": {"web": N_("Web chat"), "wechat": N_("WeChat"), "telegram": N_("Telegram"), "sms": N_("SMS")},
    "knowledge_status": {
        "draft": N_("Draft"),
        "pending": N_("Pending review"),
        "published": N_("Published"),
        "retired": N_("Retired"),
        "rejected": N_("Rejected"),
        "superseded": N_("Superseded"),
    },
    "moderation_action": {
        "block": N_("Block"),
        "hold": N_("Hold for review"),
        "replace": N_("Replace"),
        "flag": N_("Flag"),
        "warn": N_("Warn"),
        "allow": N_("Allow"),
        "approved": N_("Approved"),
        "rejected": N_("Rejected"),
        "word_add": N_("Watched word added"),
        "word_remove": N_("Watched word removed"),
        "freeze_forwarding": N_("Forwarding points frozen"),
        "unfreeze_forwarding": N_("Forwarding points unfrozen"),
    },
    "pattern_kind": {"word": N_("Word"), "wildcard": N_("Wildcard"), "regex": N_("Regular expression")},
    "content_type": {
        "question": N_("Question"),
        "answer": N_("Answer"),
        "contribution": N_("Contribution"),
        "forward": N_("Forward"),
        "word": N_("Watched word"),
    },
    "locale": {"zh_CN": N_("Simplified Chinese"), "zh_TW": N_("Traditional Chinese"), "en": N_("English")},
    "content_status": {
        "visible": N_("Visible"),
        "held": N_("Held"),
        "rejected": N_("Rejected"),
        "pending": N_("Pending review"),
        "approved": N_("Approved"),
    },
    "offer_event": {"impression": N_("Impression"), "click": N_("Click"), "accept": N_("Accepted offer")},
    "reward_kind": {"topup": N_("Phone top-up"), "data": N_("Data pack"), "gift": N_("Gift")},
    "redemption_status": {
        "pending": N_("Sending to the provider"),
        "submitted": N_("With the provider"),
        "queued": N_("Waiting for staff"),
        "fulfilled": N_("Delivered"),
        "failed": N_("Failed, points refunded"),
    },
    "tag_op": {"add": N_("added"), "remove": N_("removed")},
    "tag_source": {"inbox": N_("inbox"), "api": N_("API"), "cli": N_("import")},
}


def enum_label(gettext: Callable[[str], str], kind: str, value: object) -> str:
    """The translated name of ``value`` of enum ``kind`` (the value itself if unknown)."""
    text = "" if value is None else str(value)
    msgid = ENUMS.get(kind, {}).get(text)
    return gettext(msgid) if msgid else text
