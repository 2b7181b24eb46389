"""How gamification tells a member something later: a new badge, points about to expire.

The one thing :class:`gamification.service.Gamification` needs of the kernel's translator and
outbox, so it is handed these two and not the whole ``Services``. A standalone instance (the
CLI, a unit test) has none and tells nobody.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from bot.core.i18n import Gettext, Translator
from bot.core.messages import Reply
from bot.core.models import Member

if TYPE_CHECKING:
    from bot.core.outbox import Outbox


class Notices:
    """A notification in the member's language, on their channel, once per idempotency key."""

    def __init__(self, translator: Translator, outbox: "Outbox") -> None:
        self.translator = translator
        self.outbox = outbox

    async def send(self, member_id: int, text: Callable[[Gettext], str], *, key: str) -> bool:
        """``text`` is written with the member's ``_``; True when the outbox took it (False:
        no such member, no channel to reach them, or opted out)."""
        member = await Member.get_or_none(id=member_id)
        if member is None:
            return False
        row = await self.outbox.to_member(
            member_id,
            Reply(text=text(self.translator.bind(member.locale)), kind="notification"),
            purpose="notification",
            idempotency_key=key,
        )
        return row is not None
