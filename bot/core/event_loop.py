"""The event loop the web processes run on.

uvloop (libuv) runs the same asyncio programs with a cheaper loop: scheduling, sockets and
the thread hand-offs of aiosqlite cost less, ~14 % more answered messages per second in
bench/pipeline.py. ``BOT_EVENT_LOOP=asyncio`` falls back to the standard loop (and so does a
platform without uvloop).
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from aiohttp import web

from bot.core.settings import Settings

log = logging.getLogger(__name__)


def new_event_loop(kind: str = "uvloop") -> asyncio.AbstractEventLoop:
    if kind == "uvloop":
        try:
            import uvloop
        except ImportError:
            log.warning("uvloop is not installed; using the standard asyncio loop")
        else:
            return uvloop.new_event_loop()
    return asyncio.new_event_loop()


def run_web(app: web.Application, settings: Settings, **options: Any) -> None:
    """Serve ``app`` until stopped, as every web process does: on the configured loop, at
    ``settings.host``/``port`` unless ``options`` say otherwise, without an access log."""
    options.setdefault("host", settings.host)
    options.setdefault("port", settings.port)
    web.run_app(app, print=None, access_log=None, loop=new_event_loop(settings.event_loop), **options)
