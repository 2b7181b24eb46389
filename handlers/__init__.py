"""Channel-agnostic conversation handlers.

Each module in ``HANDLER_MODULES`` exposes ``router``; order matters only for
middlewares (outer first) and for commands that share a word.
"""
from __future__ import annotations

import importlib

from handlers.router import Context, Router

HANDLER_MODULES: list[str] = [
    "handlers.agent_mode",  # middleware: while an agent owns the ticket the bot stays quiet; keep first
    "handlers.survey",  # middleware: a bare 1-5 after a closed ticket is the survey answer
    "handlers.language",
    "handlers.optout",  # before handlers.help: owns HELP on SMS
    "handlers.help",
    "handlers.feedback",
    "handlers.subscription",
    "handlers.offers",  # middleware: offers after answers; after handlers.agent_mode
    "handlers.human",  # 人工 / human, complaints -> ticket
    "handlers.link",  # 绑定 / bind: link channels (SMS code, link code), 改名 / name
    "handlers.post",  # community questions and answers
    "handlers.forward",  # 转发给朋友 / ZF, fw_<token> deep links; middleware: SMS recipients engage
    "handlers.points",  # /points 积分
    "handlers.badges",  # /badges 徽章
    "handlers.leaderboard",  # /top 排行
    "handlers.redeem",  # /redeem 兑换
    "handlers.contribute",  # 我来补充 / /contribute, 公告 / /notices
    "handlers.ask",  # the fallback: keep last
]


def build_router() -> Router:
    root = Router("root")
    for name in HANDLER_MODULES:
        root.include_router(importlib.import_module(name).router)
    return root


__all__ = ["Context", "Router", "build_router"]
