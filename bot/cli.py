"""Command line: ``python -m bot`` (or ``everycsr``)."""

from __future__ import annotations

import argparse
import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path

from bot.channels.wechat import cli as wechat_cli
from bot.core.logs import setup_logging
from bot.core.settings import ROOT, Settings, get_settings
from bot.core.storage import with_db
from bot.staff import cli as staff_cli
from community.members import cli as members_cli
from community.offers.demo import demo_offer
from gamification import cli as gamification_cli
from gamification.demo import demo_rewards

SAMPLE_KB = ROOT / "community" / "data" / "sample_kb.yaml"
# the feature packages' sub-commands (each module has register(subparsers))
COMMAND_MODULES = (staff_cli, wechat_cli, gamification_cli, members_cli)
# run by `demo` after the sample data is loaded: async (settings) -> lines to print (logins, URLs)
DEMO_HOOKS: tuple[Callable[[Settings], Awaitable[list[str] | None]], ...] = (
    staff_cli.demo_staff,
    demo_rewards,
    demo_offer,
)


def cmd_migrate(args: argparse.Namespace, settings: Settings) -> int:
    from bot.core import storage

    asyncio.run(storage.migrate(settings.database_url))
    print(f"migrations applied to {settings.database_url}")
    return 0


async def import_kb(path: Path, *, quiet: bool = False) -> "object":
    from tqdm import tqdm

    from community.kb_io import import_rows, parse_file

    rows = parse_file(path)
    with tqdm(total=len(rows), desc=f"importing {path.name}", unit="row", disable=quiet, file=sys.stderr) as bar:
        return await import_rows(rows, progress=bar.update)


def cmd_kb_import(args: argparse.Namespace, settings: Settings) -> int:
    path = Path(args.file)
    if not path.is_file():
        print(f"error: no such file: {path}", file=sys.stderr)
        return 2

    async def run() -> int:
        report = await import_kb(path, quiet=args.quiet)
        for line, reason in report.rejected:
            print(f"{path}:{line}: {reason}", file=sys.stderr)
        print(report.summary())
        return 1 if report.rejected else 0

    return asyncio.run(with_db(settings, run))


def cmd_kb_export(args: argparse.Namespace, settings: Settings) -> int:
    from community.kb_io import export_items, export_xlsx

    suffix = Path(args.output).suffix.lower().lstrip(".") if args.output else ""
    fmt = args.format or (suffix if suffix in ("csv", "xlsx") else "yaml")
    if fmt == "xlsx" and not args.output:
        print("error: an XLSX export needs --output FILE.xlsx", file=sys.stderr)
        return 2

    async def run() -> bytes | str:
        return await export_xlsx() if fmt == "xlsx" else await export_items(fmt)

    data = asyncio.run(with_db(settings, run))  # the file is written after the loop has closed
    if isinstance(data, bytes):
        Path(args.output).write_bytes(data)
    elif args.output:
        Path(args.output).write_text(data, encoding="utf-8")
    else:
        sys.stdout.write(data)
    return 0


def cmd_kb_search(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import matcher_config
    from community.knowledge import KnowledgeService

    async def run() -> int:
        cfg = matcher_config(settings)
        cfg.semantic_background = False  # one question: embed the knowledge base first, then ask
        kb = KnowledgeService(
            cfg, calibrate=settings.search_self_calibrate and settings.search_answer_threshold is None
        )
        await kb.load()
        qvec = kb.matcher.query_vector(args.text)  # the encoder's, once for both calls (None without one)
        decision = kb.matcher.decide(args.text, locale=args.locale, qvec=qvec)
        matches = kb.matcher.search(args.text, locale=args.locale, limit=args.limit, qvec=qvec)
        await kb.close()
        print(f"decision: {decision.kind}")
        for m in matches:
            print(f"{m.score:6.3f}  #{m.item_id:<5} [{m.locale}] {m.title}")
        if not matches:
            print("no matches")
        return 0

    return asyncio.run(with_db(settings, run))


def _production_refusal(settings: Settings) -> str | None:
    """The one-line reason a production start is refused, or None (bot/production.py)."""
    from bot.production import config_problems, demo_password_problems, refusal
    from bot.web.client import ProxyConfigError, parse_networks

    try:
        parse_networks(settings.trusted_proxies)
    except ProxyConfigError as exc:
        return f"error: {exc}"
    problems = config_problems(settings)
    if settings.is_production:
        from tortoise.exceptions import OperationalError

        async def check() -> int:
            problems.extend(await demo_password_problems(settings))
            return 0

        try:
            asyncio.run(with_db(settings, check))
        except OperationalError:  # not migrated yet: no staff logins to check
            pass
    return refusal(problems) if problems else None


def cmd_kb_calibrate(args: argparse.Namespace, settings: Settings) -> int:
    """The self-calibration's figures for the knowledge base in the database."""
    from bot.app import knowledge_service

    async def run() -> int:
        kb = knowledge_service(settings)
        kb.matcher.config.semantic_background = False  # embed first, so the encoder stage is measured
        kb.self_calibrate = False  # load() must not calibrate before the vectors are in
        await kb.load()
        figures = await kb.calibrate(apply=False)
        await kb.close()
        pinned = settings.search_answer_threshold
        print(f"knowledge base: {len(kb.matcher)} published items; encoder: {kb.matcher.config.semantic or 'none'}")
        for c in figures.values():
            print("\n".join(c.lines()))
        if pinned is not None:
            print(f"BOT_SEARCH_ANSWER_THRESHOLD={pinned} pins the threshold: the figures above are not applied")
        elif not settings.search_self_calibrate:
            print("BOT_SEARCH_SELF_CALIBRATE is off: the fitted defaults apply")
        return 0

    return asyncio.run(with_db(settings, run))


def cmd_run(args: argparse.Namespace, settings: Settings) -> int:
    from bot.app import create_app
    from bot.core.event_loop import run_web

    if (refused := _production_refusal(settings)) is not None:
        print(refused, file=sys.stderr)
        return 2
    if args.port:
        settings.port = args.port
    if args.host:
        settings.host = args.host
    if getattr(args, "telegram_polling", False):
        settings.telegram_polling = True
    if getattr(args, "workers", 1) != 1:
        from bot.workers import run_workers

        return run_workers(settings, args.workers)
    db_setup = "migrate" if settings.is_sqlite else "none"
    app = create_app(settings, db_setup=db_setup)
    run_web(app, settings)
    return 0


async def _load_sample_if_empty(settings: Settings) -> str:
    from community.models import KnowledgeItem

    if await KnowledgeItem.all().count():
        return "knowledge base already loaded"
    report = await import_kb(SAMPLE_KB)
    return f"sample knowledge base: {report.summary()}"


def cmd_demo(args: argparse.Namespace, settings: Settings) -> int:
    from bot.core import storage

    if settings.is_production:  # the demo's logins and password are public
        print(
            "error: `demo` is for trying EveryCSR out and refuses production settings "
            "(BOT_ENV=production or an https BOT_PUBLIC_URL); use `python -m bot run`",
            file=sys.stderr,
        )
        return 2

    async def prepare() -> list[str]:
        await storage.migrate(settings.database_url)
        await storage.open_db(settings.database_url)
        try:
            lines = [await _load_sample_if_empty(settings)]
            for hook in DEMO_HOOKS:
                lines.extend(await hook(settings) or [])
            return lines
        finally:
            await storage.close_db()

    lines = asyncio.run(prepare())
    base = f"http://{settings.host}:{settings.port}"
    print("\nEveryCSR demo is starting")
    for line in lines:
        print(f"  {line}")
    print(f"  web chat:     {base}/chat")
    print(f"  agent inbox:  {base}/inbox")
    print(f"  health:       {base}/healthz")
    print(f"  metrics:      {base}/metrics")
    print(
        f"  chat API:     curl -s {base}/api/v1/chat -H 'Content-Type: application/json' "
        '-d \'{"text":"我的流量还剩多少，怎么查？"}\''
    )
    print("  stop with Ctrl+C\n", flush=True)
    args.port = None
    args.host = None
    return cmd_run(args, settings)


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bot", description="EveryCSR customer-service bot")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    p = sub.add_parser("run", help="start the service")
    p.add_argument("--host")
    p.add_argument("--port", type=int)
    p.add_argument("--telegram-polling", action="store_true", help="long-poll Telegram instead of the webhook")
    p.add_argument(
        "--workers",
        type=int,
        default=1,
        help="N web processes on one port (SO_REUSEPORT) plus the outbox queue worker; needs Redis + PostgreSQL",
    )
    p.set_defaults(func=cmd_run)

    p = sub.add_parser("demo", help="migrate, load the sample knowledge base and start the service")
    p.add_argument("--telegram-polling", action="store_true", help=argparse.SUPPRESS)
    p.set_defaults(func=cmd_demo)

    p = sub.add_parser("migrate", help="apply database migrations")
    p.set_defaults(func=cmd_migrate)

    kb = sub.add_parser("kb", help="knowledge base: import, export, search")
    kbsub = kb.add_subparsers(dest="kb_command", required=True, metavar="ACTION")
    p = kbsub.add_parser("import", help="import items from YAML, CSV or XLSX (idempotent)")
    p.add_argument("file")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.set_defaults(func=cmd_kb_import)
    p = kbsub.add_parser("export", help="export every item as YAML, CSV or XLSX")
    p.add_argument("-o", "--output")
    p.add_argument("--format", choices=["yaml", "csv", "xlsx"])
    p.set_defaults(func=cmd_kb_export)
    p = kbsub.add_parser("search", help="show the top matches with their scores")
    p.add_argument("text")
    p.add_argument("--locale", choices=["zh_CN", "zh_TW", "en"])
    p.add_argument("--limit", type=int, default=5)
    p.set_defaults(func=cmd_kb_search)
    p = kbsub.add_parser(
        "calibrate",
        help="leave-one-out over the items' own phrasings: the answer threshold "
        "that keeps 95%% precision on this knowledge base, with the figures",
    )
    p.set_defaults(func=cmd_kb_calibrate)

    for module in COMMAND_MODULES:
        module.register(sub)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = get_settings()
    setup_logging(settings)
    from tortoise.exceptions import DBConnectionError, OperationalError

    from community.search.semantic import SemanticUnavailable

    try:
        return int(args.func(args, settings) or 0)
    except SemanticUnavailable as exc:
        print(f"error: {exc}", file=sys.stderr)
        print("hint: or set BOT_SEARCH_SEMANTIC=none for the lexical matcher alone", file=sys.stderr)
        return 2
    except (OperationalError, DBConnectionError) as exc:
        print(f"error: database {settings.database_url.split('@')[-1]}: {exc}", file=sys.stderr)
        print("hint: is the database reachable, and migrated (python -m bot migrate)?", file=sys.stderr)
        return 3
