"""Identical reads that arrive together share one query: request collapsing.

Fifty browsers loading the whole list at once would otherwise run fifty identical queries and
hold fifty copies of a megabytes-long answer. Here a read joins only a query that has not yet
started when the read arrives, so its answer is never older than the read: it reflects every
write committed before the read arrived, exactly as a query of its own would.

For each key there is at most one query running and one batch waiting for it to end. A read
arriving while a query runs joins the waiting batch, whose query starts when the running one
ends; a read arriving when nothing runs starts a query at once. So at most two answers per
key are in memory, however many readers there are, and a reader waits at most two queries.

The shared query runs as a task of its own: a reader that goes away (its request cancelled)
does not cancel it for the others.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Hashable
from typing import Generic, TypeVar

T = TypeVar("T")


class Coalescer(Generic[T]):
    """Runs `fetch()` once for every batch of concurrent `run(key, fetch)` calls with one key."""

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Task[T]] = {}
        self._waiting: dict[Hashable, asyncio.Task[T]] = {}

    async def run(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> T:
        return await asyncio.shield(self._waiting.get(key) or self._start(key, fetch))

    def _start(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> asyncio.Task[T]:
        """A new batch. Not part of run(): a waiting reader's frame must not hold the running
        task, whose answer (megabytes) would then outlive its own readers."""
        running = self._running.get(key)
        if running is None:
            task = self._spawn(self._lead(key, fetch))
            self._running[key] = task
        else:
            task = self._spawn(self._follow(key, running, fetch))
            self._waiting[key] = task
        return task

    @property
    def keys_in_flight(self) -> int:
        return len(self._running) + len(self._waiting)

    async def _lead(self, key: Hashable, fetch: Callable[[], Awaitable[T]]) -> T:
        try:
            return await fetch()
        finally:
            if self._running.get(key) is asyncio.current_task():
                del self._running[key]

    async def _follow(
        self, key: Hashable, running: asyncio.Task[T], fetch: Callable[[], Awaitable[T]]
    ) -> T:
        await asyncio.wait([running])  # its outcome is its own readers'
        del running  # nor may this batch keep the answer before it alive
        current = asyncio.current_task()
        assert current is not None
        del self._waiting[key]  # from now on, new readers wait for this query to end
        self._running[key] = current
        return await self._lead(key, fetch)

    @staticmethod
    def _spawn(work: Awaitable[T]) -> asyncio.Task[T]:
        task: asyncio.Task[T] = asyncio.ensure_future(work)
        # Every reader may have gone: then nobody reads an error, and asyncio would log it.
        task.add_done_callback(lambda done: done.cancelled() or done.exception())
        return task
