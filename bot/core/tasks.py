"""Background tasks that must not be garbage-collected half-way.

The event loop keeps only a weak reference to a task: a fire-and-forget
``asyncio.create_task`` may vanish before it runs to the end. ``Background`` keeps a
strong reference until the task is done, logs a task that failed, and can wait for the
tasks still running (at shutdown, in tests).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Coroutine, Iterator
from typing import Any, TypeVar

log = logging.getLogger(__name__)
T = TypeVar("T")


class Background:
    """A set of running tasks, each kept until it finishes."""

    def __init__(self, name: str = "background") -> None:
        self.name = name
        self._tasks: set[asyncio.Task[Any]] = set()

    def __len__(self) -> int:
        return len(self._tasks)

    def __iter__(self) -> Iterator[asyncio.Task[Any]]:
        return iter(list(self._tasks))

    def __bool__(self) -> bool:
        return bool(self._tasks)

    def spawn(self, coro: Coroutine[Any, Any, T], *, name: str | None = None) -> asyncio.Task[T]:
        """Run ``coro`` in the background, kept referenced until it is done."""
        return self.keep(asyncio.create_task(coro, name=name))

    def keep(self, task: asyncio.Task[T]) -> asyncio.Task[T]:
        """Keep an already created task referenced until it is done."""
        self._tasks.add(task)
        task.add_done_callback(self._done)
        return task

    def _done(self, task: asyncio.Task[Any]) -> None:
        self._tasks.discard(task)
        if not task.cancelled() and task.exception() is not None:
            log.error("%s task %s failed", self.name, task.get_name(), exc_info=task.exception())

    async def wait(self) -> None:
        """Until every task (also those started meanwhile) is done."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def cancel(self) -> None:
        """Cancel every task and wait for them to end."""
        for task in list(self._tasks):
            task.cancel()
        await self.wait()
