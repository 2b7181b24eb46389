"""The ledger's part of a member merge: points move by new linked entries, never by
rewriting history (``bot.core.identity.merge`` calls this for ``LedgerEntry`` and ``Balance``)."""

from __future__ import annotations

from typing import Any

from tortoise.backends.base.client import BaseDBAsyncClient

from gamification import ledger
from gamification.service import Gamification


class LedgerMergeHook:
    """Built by the assembly with the app's :class:`Gamification`: a merge takes the
    merged-away member off its board, an unmerge revisits both members' badges by its rules."""

    name = "ledger"

    def __init__(self, gamification: Gamification) -> None:
        self.gamification = gamification

    async def merge(self, conn: BaseDBAsyncClient, merge_id: int, source_id: int, target_id: int) -> dict[str, Any]:
        """Everything the source holds (net balance and held points) moves to the target."""
        return await ledger.move_within(conn, source_id, target_id, key=f"merge:{merge_id}", ref=f"merge:{merge_id}")

    async def after_merge(self, source_id: int, target_id: int) -> None:
        """The merged-away member leaves the leaderboards (its status is no longer active)."""
        await self.gamification.on_member_status_changed(source_id)

    async def unmerge(
        self, conn: BaseDBAsyncClient, merge_id: int, source_id: int, target_id: int, done: dict[str, Any]
    ) -> None:
        """The same amounts go back (the target may go into debt if it spent them since)."""
        await ledger.move_within(
            conn,
            target_id,
            source_id,
            granted=int(done.get("granted", 0)),
            held=int(done.get("held", 0)),
            key=f"unmerge:{merge_id}",
            ref=f"unmerge:{merge_id}",
        )

    async def after_unmerge(self, source_id: int, target_id: int) -> None:
        """Both members' badges follow their own history again: the target may lose what the
        source's record earned it (audited), the source regains its own."""
        for member_id in (target_id, source_id):
            await self.gamification.revisit_badges(member_id, "unmerge")
