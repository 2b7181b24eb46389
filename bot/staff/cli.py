"""``python -m bot staff add USERNAME --role agent`` and the demo's staff logins."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import os
import sys

from bot.core.settings import Settings
from bot.staff.models import ROLES

DEMO_STAFF = (
    ("agent", ["agent"], "客服小王"),
    ("reviewer", ["reviewer"], "知识审核员"),
    ("marketer", ["marketer"], "营销小李"),
    ("admin", ["admin"], "管理员"),
)


def cmd_staff_add(args: argparse.Namespace, settings: Settings) -> int:
    from bot.core.storage import with_db
    from bot.staff.auth import create_staff

    password = args.password or os.environ.get("BOT_STAFF_PASSWORD") or ""
    if not password:
        if not sys.stdin.isatty():
            print("error: give --password or BOT_STAFF_PASSWORD when not on a terminal", file=sys.stderr)
            return 2
        password = getpass.getpass(f"password for {args.username}: ")

    async def run() -> int:
        from bot.staff import audit

        try:
            user = await create_staff(args.username, password, args.role, args.name or "")
        except ValueError as exc:
            print(f"error: {exc}", file=sys.stderr)
            return 2
        await audit.record(None, "staff.save", "staff", user.id, username="cli", roles=list(user.roles))
        print(f"staff {user.username} ({', '.join(user.roles)}) saved")
        return 0

    return asyncio.run(with_db(settings, run))


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    staff = sub.add_parser("staff", help="staff accounts")
    ssub = staff.add_subparsers(dest="staff_command", required=True, metavar="ACTION")
    p = ssub.add_parser("add", help="create or update a staff login")
    p.add_argument("username")
    p.add_argument("--role", action="append", choices=ROLES, required=True, help="repeatable")
    p.add_argument("--name", help="display name")
    p.add_argument("--password", help="(or BOT_STAFF_PASSWORD, or prompt)")
    p.set_defaults(func=cmd_staff_add)


async def demo_staff(settings: Settings) -> list[str]:
    """Create the demo logins (same password for all) and say what they are."""
    from bot.staff.auth import create_staff
    from bot.staff.models import StaffUser

    for username, roles, name in DEMO_STAFF:
        if not await StaffUser.exists(username=username):
            await create_staff(username, settings.demo_staff_password, roles, name)
    names = ", ".join(u for u, _, _ in DEMO_STAFF)
    return [f"staff logins: {names} — password {settings.demo_staff_password}"]
