"""Channel-agnostic conversation handlers.

Each module in ``HANDLER_MODULES`` exposes ``router``; order matters only for
middlewares (outer first) and for commands that share a word.
"""
from __future__ import annotations

import importlib

from handlers.router import Context, Router

HANDLER_MODULES: list[str] = [
    "handlers.language",
    "handlers.help",
    "handlers.feedback",
    "handlers.ask",  # the fallback: keep last
]


def build_router() -> Router:
    root = Router("root")
    for name in HANDLER_MODULES:
        root.include_router(importlib.import_module(name).router)
    return root


__all__ = ["Context", "Router", "build_router"]
