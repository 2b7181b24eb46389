"""A business code that reads the member's own account (CXLL, CXYE …), answered in the chat."""

from __future__ import annotations

import logging

from bot.core.messages import Choice, Reply
from community.account_queries import AccountQueries, QueryUnavailable
from community.models import KnowledgeItem
from handlers.router import Context

log = logging.getLogger(__name__)


def member_number(ctx: Context) -> str | None:
    """Whose account a code may read: the number an SMS came from, else the phone the member
    verified (绑定手机). Never a number typed in the message."""
    if ctx.channel == "sms":
        return ctx.account.external_id
    if ctx.member.phone and ctx.member.phone_verified_at is not None:
        return ctx.member.phone
    return None


async def account_reply(ctx: Context, item: KnowledgeItem) -> Reply | None:
    """The account's answer to the code; None when no account-query API is configured (the
    knowledge base's answer stands)."""
    api = AccountQueries.from_services(ctx.services)  # the process's shared session
    if api is None or not item.sms_code:
        return None
    _ = ctx._
    if ctx.incoming.meta.get("group"):  # an account's figures are never posted to a group
        return Reply(
            text=_("Account details are shown only in a private chat with me."), kind="account_query", item_id=item.id
        )
    phone = member_number(ctx)
    if phone is None:
        return Reply(
            text=_(
                "%(code)s looks up your own account. To use it here, first verify your mobile number: "
                "send “bind phone” (绑定手机) followed by your number.",
                code=item.sms_code,
            ),
            choices=[Choice(label=_("Talk to a person"), action="human")],
            kind="account_query",
            item_id=item.id,
        )
    try:
        text = await api.ask(item.sms_code, phone, ctx.locale)
    except QueryUnavailable as exc:
        log.warning("account query %s failed: %s", item.sms_code, exc)
        return Reply(
            text=_("Sorry, your account details cannot be fetched right now. Please try again in a few minutes."),
            choices=[Choice(label=_("Talk to a person"), action="human")],
            kind="account_query",
            item_id=item.id,
        )
    if text is None:
        return None
    return Reply(text=text, kind="account_query", item_id=item.id)
