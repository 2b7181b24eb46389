"""A sender's channel account and member, found or created race-safely.

In the kernel because the pipeline (every inbound message), handlers (a forward to a
number that never wrote to us) and pages (the web chat's own account) all need the one
way to create a person: a member and its account in one write, unique per
``(channel, external_id)``.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime

from tortoise.exceptions import IntegrityError

from tortoise.models import Model

from bot.core import point_queries
from bot.core.point_queries import Beside
from bot.core.group_commit import GroupCommit, Row, WriteJob, commit
from bot.core.i18n import DEFAULT_LOCALE
from bot.core.models import ChannelAccount, Member
from bot.core.stores import member_state_key

__all__ = ["FirstWrites", "account_for", "get_or_create_account", "state_key"]

state_key = member_state_key

_MEMBER = ("member", Member)  # the account's member, read with it

FirstWrites = Callable[[WriteJob, Row[Member]], object]  # what it returns is ignored


async def account_for(
    writes: GroupCommit | None,
    channel: str,
    external_id: str,
    *,
    display_name: str = "",
    locale: str | None = None,
    chat_id: str = "",
    seen_at: datetime | None = None,
    first_writes: FirstWrites | None = None,
    beside: tuple[Beside, ...] = (),
    found_beside: dict[str, Model | None] | None = None,
) -> tuple[ChannelAccount, bool]:
    """The sender's account with its member, and whether this call created them.

    A first contact creates both in one write job, already marked as seen at ``seen_at``
    (so the first message writes no extra updates); ``first_writes`` adds the caller's
    own writes for the new member to that job, committed with it or not at all. The job
    goes through ``writes`` (grouped with other messages' writes) or, without it, alone.

    ``beside``: rows of the member's read in the same query (the pipeline's live ticket);
    they land in ``found_beside`` (None each for a member this call created)."""
    account, rows = await point_queries.get_with(
        ChannelAccount, _MEMBER, beside, channel=channel, external_id=external_id
    )
    if found_beside is not None:
        found_beside.update(rows or dict.fromkeys((b.name for b in beside), None))
    if account:
        return account, False
    job = writes.job() if writes else WriteJob()
    member_row = job.insert(
        Member, display_name=display_name[:128], locale=locale or DEFAULT_LOCALE, last_seen_at=seen_at
    )
    account_row = job.insert(
        ChannelAccount,
        channel=channel,
        external_id=external_id,
        chat_id=chat_id,
        last_inbound_at=seen_at,
        member_id=member_row,
    )
    if first_writes:
        first_writes(job, member_row)
    try:
        await (writes.run(job) if writes else commit(job))
    except IntegrityError:
        # a concurrent first message of the same person won the race
        found = await point_queries.get_or_none(ChannelAccount, _MEMBER, channel=channel, external_id=external_id)
        if found is None:
            raise
        return found, False
    account = account_row.instance()
    account.member = member_row.instance()
    return account, True


async def get_or_create_account(
    channel: str,
    external_id: str,
    *,
    display_name: str = "",
    locale: str | None = None,
    chat_id: str = "",
) -> ChannelAccount:
    """The account (with its member) of someone who may never have written to us."""
    account, _created = await account_for(
        None, channel, external_id, display_name=display_name, locale=locale, chat_id=chat_id
    )
    return account
