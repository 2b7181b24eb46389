"""Welcome and help: what the service can do, in the member's language."""

from __future__ import annotations

import re

from bot.core.i18n import N_, is_traditional
from bot.core.messages import Choice, Reply
from handlers.router import Context, Router

router = Router("help")


_CJK = re.compile(r"[\u3400-\u9fff]")
_WORD = re.compile(r"^[A-Za-z]+$")


def command_word(words: tuple[str, ...], locale: str) -> str | None:
    """The word a member of ``locale`` types for a command: its Chinese name in the member's
    script (Simplified for zh_CN, Traditional where the command has one for zh_TW), its
    English name for en."""
    if locale == "en":
        return next((w for w in words if _WORD.match(w)), None)
    chinese = [w for w in words if _CJK.search(w)]
    if locale == "zh_TW":
        return next((w for w in chinese if is_traditional(w)), None) or next(iter(chinese), None)
    return next((w for w in chinese if not is_traditional(w)), None) or next(iter(chinese), None)


def command_lines(ctx: Context) -> list[str]:
    """One line per command the member can use, from the routers' own registrations, so the
    help can never fall behind the commands."""
    pipeline = ctx.services.pipeline
    if pipeline is None:
        return []
    lines: list[str] = []
    seen: set[str] = set()
    for command in pipeline.router.commands():
        if not command.help or command.help in seen or command.help in _NOT_LISTED:
            continue
        word = command_word(command.words, ctx.locale)
        if word is None:
            continue
        seen.add(command.help)
        lines.append(f"{word} — {ctx._(command.help, word=word)}")
    return lines


_NOT_LISTED = {"Start", "Receive offers and notifications again"}


def help_reply(ctx: Context, *, welcome: bool = False) -> Reply:
    _ = ctx._
    lines = []
    if welcome:
        lines.append(_("Welcome to EveryCSR! Everyone can be a customer service rep here."))
    lines.append(
        _("Type your question (for example: how do I check my data balance), or send a business code such as CXLL.")
    )
    lines.append(_("You can also send:"))
    lines.extend(command_lines(ctx))
    return Reply(
        text="\n".join(lines),
        choices=[
            Choice(label=_("Talk to a person"), action="human"),
            Choice(label=_("Choose your language"), action="lang:"),
        ],
        kind="help",
    )


@router.command("help", "帮助", "幫助", "?", "？", help=N_("What I can do"))
async def help_cmd(ctx: Context) -> Reply:
    return help_reply(ctx)


@router.command("start", help=N_("Start"))
async def start_cmd(ctx: Context) -> Reply:
    return help_reply(ctx, welcome=True)


@router.event("start")
@router.event("subscribe")
async def subscribed(ctx: Context) -> Reply:
    return help_reply(ctx, welcome=True)


@router.event("unknown_action")
async def unknown_action(ctx: Context) -> Reply:
    return Reply(
        text=ctx._("Sorry, that option is no longer available. Type your question and I will help."),
        kind="error",
    )
