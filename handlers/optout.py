"""Unsubscribe / subscribe keywords on every channel, and HELP on SMS (the business codes).

TD, 退订, STOP, UNSUBSCRIBE opt the member out of everything they did not ask for
(offers, notifications, knowledge forwarded by others); START / 订阅 opt back in. The
change is stored on the member and audited (:mod:`community.consent`); the outbox
suppresses unsolicited messages for opted-out members, so every sender honours it.
"""

from __future__ import annotations

from bot.core.i18n import N_
from bot.core.messages import Reply
from community.consent import opt_in, opt_out
from community.models import KnowledgeItem
from handlers.help import help_reply
from handlers.router import Context, Router

router = Router("optout")

SMS = "sms"
MAX_CODES = 30


async def _not_a_keyword(ctx: Context) -> Reply | list[Reply] | None:
    """ "退订 彩铃" asks about a service, it is not a global opt-out: search instead."""
    fallback = ctx.services.pipeline.router.find_fallback() if ctx.services.pipeline else None
    if fallback is None:
        return None
    ctx.args = ctx.text
    return await fallback(ctx)


@router.command("td", "退订", "退訂", "stop", "unsubscribe", help=N_("Stop offers and notifications"))
async def unsubscribe(ctx: Context) -> Reply | list[Reply] | None:
    if ctx.args:
        return await _not_a_keyword(ctx)
    await opt_out(ctx.member.id, channel=ctx.channel, source_text=ctx.text)
    ctx.member.opted_out = True
    return Reply(
        text=ctx._(
            "You have unsubscribed: no more offers, notifications or messages forwarded by others. "
            "Your own questions are still answered. Send START or 订阅 to subscribe again."
        ),
        kind="optout",
    )


@router.command("start", "订阅", "訂閱", "unstop", help=N_("Receive offers and notifications again"))
async def subscribe(ctx: Context) -> Reply | list[Reply] | None:
    if ctx.args:
        return await _not_a_keyword(ctx)
    if ctx.channel != SMS and not ctx.member.opted_out and ctx.text.lstrip("/").lower() == "start":
        return help_reply(ctx, welcome=True)  # a chat app's /start is a greeting, not consent
    await opt_in(ctx.member.id, channel=ctx.channel, source_text=ctx.text)
    ctx.member.opted_out = False
    return Reply(
        text=ctx._("You are subscribed again to notifications and offers. Send TD or 退订 to unsubscribe at any time."),
        kind="optin",
    )


async def sms_codes(locale: str) -> list[tuple[str, str]]:
    """Business codes with their titles, in the member's locale where one exists."""
    rows = await KnowledgeItem.filter(status="published", sms_code__isnull=False).values_list(
        "sms_code", "title", "locale"
    )
    best: dict[str, tuple[int, str]] = {}
    for code, title, item_locale in rows:
        if not code:
            continue
        rank = 0 if item_locale == locale else 1 if item_locale == "zh_CN" else 2
        key = code.upper()
        if key not in best or rank < best[key][0]:
            best[key] = (rank, title)
    return [(code, title) for code, (_, title) in sorted(best.items())][:MAX_CODES]


@router.command("help", "帮助", "幫助", help=N_("What I can do"))
async def help_cmd(ctx: Context) -> Reply:
    """On SMS: the business codes; elsewhere the general help (one implementation)."""
    if ctx.channel != SMS:
        return help_reply(ctx)
    lines = [
        ctx._("Send 人工 for a person, TD to unsubscribe."),
        ctx._("Send a code (for example CXLL), or just type your question:"),
    ]
    lines += [f"{code} {title}" for code, title in await sms_codes(ctx.locale)]
    return Reply(text="\n".join(lines), kind="help")
