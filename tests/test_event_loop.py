"""The web processes' event loop: uvloop by default, the standard loop on request."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pydantic
import pytest
import uvloop

from bot.core.event_loop import new_event_loop
from tests.conftest import make_settings


@pytest.mark.parametrize("kind, expected", [("uvloop", uvloop.Loop), ("asyncio", asyncio.SelectorEventLoop)])
def test_loop_kind(kind: str, expected: type) -> None:
    loop = new_event_loop(kind)
    try:
        assert isinstance(loop, expected)
        assert loop.run_until_complete(asyncio.sleep(0, result="ran")) == "ran"
    finally:
        loop.close()


def test_setting_defaults_to_uvloop_and_rejects_unknown_loops(tmp_path: Path) -> None:
    assert make_settings(tmp_path).event_loop == "uvloop"
    with pytest.raises(pydantic.ValidationError):
        make_settings(tmp_path, event_loop="twisted")
