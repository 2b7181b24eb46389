"""What "production" means, and the settings it refuses to start with.

Production is ``BOT_ENV=production`` or a ``BOT_PUBLIC_URL`` on https (a deployment that
members reach). There the service will not start (``python -m bot run``/``demo`` print one line
and exit 2) while ``BOT_SECRET_KEY`` is the shipped default or short, or while a ``make demo``
staff login (agent, reviewer, marketer, admin) still accepts the demo password: both are
published in this repository, so anyone could forge fingerprints or log in as admin.
"""

from __future__ import annotations

import asyncio

from bot.core.settings import Settings

DEFAULT_SECRET_KEY = "change-me-in-production"
DEFAULT_DEMO_PASSWORD = "demo-pass-2026"
MIN_SECRET_CHARS = 32
DEMO_USERNAMES = ("agent", "reviewer", "marketer", "admin")  # bot/staff/cli.py: DEMO_STAFF


def config_problems(settings: Settings) -> list[str]:
    """What in the settings alone makes this production deployment unsafe."""
    if not settings.is_production:
        return []
    problems = []
    if settings.secret_key == DEFAULT_SECRET_KEY or len(settings.secret_key) < MIN_SECRET_CHARS:
        problems.append(
            f"BOT_SECRET_KEY is the default or shorter than {MIN_SECRET_CHARS} characters "
            "(make one: python -c 'import secrets; print(secrets.token_urlsafe(48))')"
        )
    return problems


async def demo_password_problems(settings: Settings) -> list[str]:
    """Demo staff logins that still accept a demo password (needs the database open)."""
    if not settings.is_production:
        return []
    from bot.staff.auth import _verify
    from bot.staff.models import StaffUser

    demo_passwords = {DEFAULT_DEMO_PASSWORD, settings.demo_staff_password}
    found = []
    for user in await StaffUser.filter(username__in=DEMO_USERNAMES, active=True).order_by("id"):
        for password in demo_passwords:
            if await asyncio.to_thread(_verify, user.password_hash, password):
                found.append(user.username)
                break
    if not found:
        return []
    names = ", ".join(found)
    return [
        f"staff login(s) {names} still accept the demo password (change each: python -m bot staff add NAME "
        "--role ROLE, or deactivate it)"
    ]


def refusal(problems: list[str]) -> str:
    """The one line printed before exit 2."""
    return "error: refusing to start in production (BOT_ENV=production or an https BOT_PUBLIC_URL): " + "; ".join(
        problems
    )
