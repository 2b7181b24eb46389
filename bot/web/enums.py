"""One place that names stored enum values for staff pages, in the reader's language.

Templates call ``enum_label("kind", value)`` (installed by ``bot.web.render``); a value not
listed here is shown as stored, so a new value degrades to its code rather than an error.
"""
from __future__ import annotations

from collections.abc import Callable

from bot.i18n import N_

ENUMS: dict[str, dict[str, str]] = {
    "ticket_status": {"live": N_("Open or claimed"), "open": N_("Open"), "claimed": N_("Claimed"),
                      "closed": N_("Closed"), "all": N_("All")},
    "ticket_reason": {"unanswered": N_("No answer found"), "unsatisfied": N_("Unsatisfied"),
                      "complaint": N_("Complaint"), "human": N_("Asked for a person"),
                      "deadline": N_("Community deadline passed"), "vip": N_("VIP"), "repeat": N_("Repeat contact")},
    "channel": {"web": N_("Web chat"), "wechat": N_("WeChat"), "telegram": N_("Telegram"), "sms": N_("SMS")},
    "knowledge_status": {"draft": N_("Draft"), "pending": N_("Pending review"), "published": N_("Published"),
                         "retired": N_("Retired"), "rejected": N_("Rejected")},
    "moderation_action": {"block": N_("Block"), "hold": N_("Hold for review"), "replace": N_("Replace"),
                          "flag": N_("Flag"), "warn": N_("Warn"), "allow": N_("Allow")},
    "content_status": {"visible": N_("Visible"), "held": N_("Held"), "rejected": N_("Rejected"),
                       "pending": N_("Pending review"), "approved": N_("Approved")},
    "reward_kind": {"topup": N_("Phone top-up"), "data": N_("Data pack"), "gift": N_("Gift")},
    "tag_op": {"add": N_("added"), "remove": N_("removed")},
    "tag_source": {"inbox": N_("inbox"), "api": N_("API"), "cli": N_("import")},
}


def enum_label(gettext: Callable[[str], str], kind: str, value: object) -> str:
    """The translated name of ``value`` of enum ``kind`` (the value itself if unknown)."""
    text = "" if value is None else str(value)
    msgid = ENUMS.get(kind, {}).get(text)
    return gettext(msgid) if msgid else text
