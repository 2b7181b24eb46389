"""The language command: the member picks zh_CN, zh_TW or en for every channel."""

from __future__ import annotations

from bot.core.i18n import LOCALE_NAMES, LOCALES, N_
from bot.core.messages import Choice, Reply
from bot.core.models import Member
from handlers.router import Context, Router

router = Router("language")


@router.command("lang", "language", "语言", "語言", help=N_("Choose your language"))
async def choose(ctx: Context) -> Reply:
    return Reply(
        text=ctx._("Choose your language:"),
        choices=[Choice(label=LOCALE_NAMES[loc], action=f"lang:{loc}") for loc in LOCALES],
        kind="command",
    )


@router.action("lang")
async def set_language(ctx: Context) -> Reply:
    if ctx.args not in LOCALES:
        return await choose(ctx)
    await Member.filter(id=ctx.member.id).update(locale=ctx.args, locale_explicit=True)
    ctx.member.locale = ctx.args
    _ = ctx.services.translator.bind(ctx.args)
    return Reply(text=_("OK, I will talk to you in English from now on."), kind="command")
