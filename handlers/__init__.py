"""Channel-agnostic conversation handlers.

Each handler module exposes ``router``; ``HANDLER_MODULES`` lists them in order, which
matters only for middlewares (outer first) and for commands that share a word. Real
imports, so a reader (and the import-graph test) sees every handler the bot has.
"""

from __future__ import annotations

from types import ModuleType

from handlers import (
    agent_mode,
    ask,
    badges,
    continuation,
    contribute,
    feedback,
    forward,
    help,
    human,
    language,
    leaderboard,
    link,
    offers,
    optout,
    points,
    post,
    redeem,
    subscription,
    survey,
)
from handlers.router import Context, Domains, Router

HANDLER_MODULES: list[ModuleType] = [
    agent_mode,  # middleware: while an agent owns the ticket the bot stays quiet; keep first
    survey,  # middleware: a bare 1-5 after a closed ticket is the survey answer
    language,
    optout,  # before help: owns HELP on SMS
    help,
    feedback,
    subscription,
    offers,  # middleware: offers after answers; after agent_mode
    human,  # 人工 / human, complaints -> ticket
    link,  # 绑定 / bind: link channels (SMS code, link code), 改名 / name
    post,  # community questions and answers
    forward,  # 转发给朋友 / ZF, fw_<token> deep links; middleware: SMS recipients engage
    points,  # /points 积分
    badges,  # /badges 徽章
    leaderboard,  # /top 排行
    redeem,  # /redeem 兑换
    contribute,  # 我来补充 / /contribute, 公告 / /notices
    ask,  # the fallback: last of the handlers
    continuation,  # middleware: pages answers on size-limited channels (SMS); innermost, after ask
]


def build_router() -> Router:
    root = Router("root")
    for module in HANDLER_MODULES:
        root.include_router(module.router)
    return root


__all__ = ["Context", "Domains", "HANDLER_MODULES", "Router", "build_router"]
