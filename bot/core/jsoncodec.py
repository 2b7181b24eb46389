"""The JSON codec of the hot path: what a message stores (state, dedup results, JSON columns).

orjson, the C encoder tortoise itself switches to when it is installed, so a JSON column
reads back the same whether a write job or the ORM wrote it. ``dumps`` returns ``str`` and,
like ``json.dumps``, turns non-string dict keys into strings; output is compact UTF-8
(no ``\\uXXXX`` escapes, no spaces), which every reader parses the same."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["dumps", "loads"]

_OPTIONS = orjson.OPT_NON_STR_KEYS


def dumps(value: Any) -> str:
    return orjson.dumps(value, option=_OPTIONS).decode()


def loads(raw: str | bytes) -> Any:
    return orjson.loads(raw)
