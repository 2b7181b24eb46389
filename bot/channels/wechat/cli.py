"""``python -m bot wechat menu set FILE.yaml``: set the Official Account's custom menu."""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
from pathlib import Path

from bot.channels.wechat.api import WeChatAPI, WeChatAPIError
from bot.channels.wechat.menu import MenuError, load_menu
from bot.core.settings import Settings


def register(subparsers: "argparse._SubParsersAction[argparse.ArgumentParser]") -> None:
    wechat = subparsers.add_parser("wechat", help="WeChat Official Account: custom menu")
    sub = wechat.add_subparsers(dest="wechat_command", required=True, metavar="ACTION")
    menu = sub.add_parser("menu", help="the custom menu")
    msub = menu.add_subparsers(dest="menu_command", required=True, metavar="ACTION")
    p = msub.add_parser("set", help="check a YAML menu file and publish it")
    p.add_argument("file")
    p.add_argument("--dry-run", action="store_true", help="check and print the JSON; send nothing")
    p.set_defaults(func=cmd_menu_set)


def cmd_menu_set(args: argparse.Namespace, settings: Settings) -> int:
    try:
        menu = load_menu(Path(args.file))
    except MenuError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    body = menu.to_wechat()
    if args.dry_run:
        print(json.dumps(body, ensure_ascii=False, indent=2))
        return 0
    if not (settings.wechat_appid and settings.wechat_secret):
        print("error: set BOT_WECHAT_APPID and BOT_WECHAT_SECRET first", file=sys.stderr)
        return 2
    return asyncio.run(_publish(settings, body))


async def _publish(settings: Settings, body: dict) -> int:  # type: ignore[type-arg]
    api = WeChatAPI(settings.wechat_appid, settings.wechat_secret, base=settings.wechat_api_base)
    try:
        await api.create_menu(body)
    except WeChatAPIError as exc:
        print(f"error: WeChat refused the menu: {exc}", file=sys.stderr)
        return 1
    except OSError as exc:
        print(f"error: cannot reach {settings.wechat_api_base}: {exc}", file=sys.stderr)
        return 1
    finally:
        await api.close()
    print(f"menu published: {len(body['button'])} buttons")
    return 0
