"""A bound on the bytes that long answers hold in memory at once, shared by every request.

A list of 1,000,000 patients is ~146 MB. Readers of one list share one copy (coalesce.py), but
readers of different lists, or of one list while slow clients still take an earlier copy,
would each hold one: memory would grow with the clients, not the data. Here each answer takes
its bytes from one budget while it is read from the database, and gives them back when the
last response sending it is done. A reader that needs more than is left waits, first come
first served, for others to give bytes back; after `within` seconds it gives up (BudgetBusy,
answered like a busy pool). An answer larger than the whole budget can never fit (TooLarge).

Pure asyncio: no database, no HTTP.
"""

from __future__ import annotations

import asyncio
import collections


class BudgetBusy(Exception):
    """The budget stayed spent by other answers for the whole wait."""


class TooLarge(Exception):
    """The answer alone needs more than the whole budget."""


class ByteBudget:
    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.held = 0
        self._waiters: collections.deque[tuple[int, asyncio.Future[None]]] = collections.deque()

    async def take(self, amount: int, mine: int, within: float) -> None:
        """Add `amount` bytes to a holder that already holds `mine`."""
        if mine + amount > self.limit:
            raise TooLarge
        if not self._waiters and self.held + amount <= self.limit:
            self.held += amount
            return
        granted: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        waiter = (amount, granted)
        self._waiters.append(waiter)
        try:
            await asyncio.wait([granted], timeout=within)
        except asyncio.CancelledError:  # the request went away
            if granted.done():
                self.give_back(amount)
            else:
                self._leave(waiter)
            raise
        if not granted.done():
            self._leave(waiter)
            raise BudgetBusy

    def give_back(self, amount: int) -> None:
        self.held -= amount
        self._grant()

    def _leave(self, waiter: tuple[int, asyncio.Future[None]]) -> None:
        self._waiters.remove(waiter)
        waiter[1].cancel()
        self._grant()  # those behind it may fit now

    def _grant(self) -> None:
        while self._waiters and self.held + self._waiters[0][0] <= self.limit:
            amount, future = self._waiters.popleft()
            self.held += amount
            future.set_result(None)
