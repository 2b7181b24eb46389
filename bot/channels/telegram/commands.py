"""The Telegram command menu, and how a ``/command`` becomes the text the router knows.

Handlers register text commands (``points``, ``积分`` …) once for every channel; here a
Telegram ``/points@everycsr_bot`` is mapped to that same text, and the menu shown by
Telegram's "/" button is published per language with ``setMyCommands``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from aiogram import Bot
from aiogram.types import BotCommand

from bot.core.i18n import LOCALES, N_, Translator


@dataclass(frozen=True, slots=True)
class MenuCommand:
    name: str  # what the member types after "/"
    description: str  # English msgid, translated per language
    private: bool = False  # answered in the private chat even when asked in a group


MENU: tuple[MenuCommand, ...] = (
    MenuCommand("start", N_("Start and see what I can do")),
    MenuCommand("help", N_("What I can do")),
    MenuCommand("ask", N_("Ask a question")),
    MenuCommand("points", N_("My points"), private=True),
    MenuCommand("top", N_("Leaderboard")),
    MenuCommand("badges", N_("My badges"), private=True),
    MenuCommand("redeem", N_("Redeem points for rewards"), private=True),
    MenuCommand("human", N_("Talk to a person")),
    MenuCommand("lang", N_("Choose your language")),
    MenuCommand("stop", N_("Stop notifications")),
)
BY_NAME = {c.name: c for c in MENU}

_COMMAND = re.compile(r"^/([A-Za-z0-9_]{1,32})(?:@([A-Za-z0-9_]{1,64}))?(?:\s+(.*))?$", re.DOTALL)

# Telegram's language_code per locale of ours; the menu without a code is for everyone
# else. Telegram only knows two-letter codes, so zh_TW shares "zh" with zh_CN.
MENU_LANGUAGES: dict[str, str] = {"zh": "zh_CN", "en": "en"}


@dataclass(frozen=True, slots=True)
class ParsedCommand:
    name: str  # lower-case, without "/" and "@bot"
    args: str
    addressed_to: str | None  # the "@bot" part, if any


def parse_command(text: str) -> ParsedCommand | None:
    """``/Points@Bot  x y`` -> ("points", "x y", "Bot"); None when text is not a command."""
    m = _COMMAND.match(text)
    if m is None:
        return None
    return ParsedCommand(m.group(1).lower(), (m.group(3) or "").strip(), m.group(2))


def command_text(cmd: ParsedCommand) -> str:
    """The text the pipeline gets for a command: the router's own command word.

    ``/ask <question>`` is the question itself (the fallback answers questions);
    every other command keeps its word and arguments (``lang en``, ``redeem 3``).
    """
    if cmd.name == "ask" and cmd.args:
        return cmd.args
    return f"{cmd.name} {cmd.args}".strip()


def is_private_command(cmd: ParsedCommand) -> bool:
    """Commands about a member's own account are answered in the private chat only."""
    entry = BY_NAME.get(cmd.name)
    return bool(entry and entry.private)


def menu_for(locale: str, translator: Translator) -> list[BotCommand]:
    return [BotCommand(command=c.name, description=translator.gettext(locale, c.description)[:256]) for c in MENU]


async def publish_menu(bot: Bot, translator: Translator, default_locale: str) -> None:
    """``setMyCommands`` for the default menu and each language we speak."""
    await bot.set_my_commands(menu_for(default_locale, translator))
    for code, locale in MENU_LANGUAGES.items():
        if locale in LOCALES:
            await bot.set_my_commands(menu_for(locale, translator), language_code=code)
