"""``python -m bot tags import FILE.csv``: add or remove member tags in bulk (audited)."""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys
from pathlib import Path

from bot.core.settings import Settings


def cmd_tags_import(args: argparse.Namespace, settings: Settings) -> int:
    from bot.core.storage import with_db
    from community.inbox.service import reprioritize
    from community.members.tags import import_csv

    try:
        text = Path(args.file).read_text(encoding="utf-8-sig") if args.file != "-" else sys.stdin.read()
    except (OSError, UnicodeDecodeError) as exc:
        print(f"error: cannot read {args.file}: {exc}", file=sys.stderr)
        return 2

    async def run() -> int:
        result = await import_csv(text, actor=f"cli:{args.actor or getpass.getuser()}")
        for member_id in result.members:  # live tickets follow the members' VIP status
            await reprioritize(None, member_id)
        for line in result.errors:
            print(line, file=sys.stderr)
        print(f"{result.changed} changed, {result.unchanged} already so, {len(result.errors)} errors")
        return 1 if result.errors else 0

    return asyncio.run(with_db(settings, run))


def register(sub: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    tags = sub.add_parser("tags", help="member tags")
    tsub = tags.add_subparsers(dest="tags_command", required=True, metavar="ACTION")
    p = tsub.add_parser(
        "import", help="CSV rows: member,tag[,add|remove]; member is an id, +phone or channel:external_id"
    )
    p.add_argument("file", help="CSV file (UTF-8), or - for stdin")
    p.add_argument("--actor", help="who is importing, for the audit record (default: the OS user)")
    p.set_defaults(func=cmd_tags_import)
