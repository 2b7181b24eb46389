"""Process logging, the same for the CLI, web workers and the queue worker."""

from __future__ import annotations

import logging

from bot.core.settings import Settings


def setup_logging(settings: Settings) -> None:
    """One format and level for every process; chatty libraries at WARNING."""
    logging.basicConfig(
        level=settings.log_level.upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    logging.getLogger("jieba").setLevel(logging.WARNING)
    logging.getLogger("tortoise").setLevel(logging.WARNING)
