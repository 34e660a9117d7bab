"""A chat's turn to call Telegram: one holder at a time, waiters served by priority then arrival.

Finals queue ahead of interim frames; an interim frame that a final now comes before is evicted
(it would carry stale text by the time its turn came).
"""

from __future__ import annotations

import asyncio
import heapq
from collections.abc import Callable


class Turns:
    """One holder at a time; waiters are served by (priority, arrival)."""

    def __init__(self) -> None:
        self.held = False
        self._waiters: list[tuple[int, int, asyncio.Future[None]]] = []

    @property
    def free(self) -> bool:
        return not self.held and not self._waiters

    @property
    def waiting(self) -> int:
        return len(self._waiters)

    def try_acquire(self) -> bool:
        if not self.free:
            return False
        self.held = True
        return True

    async def acquire(self, priority: int, seq: int) -> None:
        if self.try_acquire():
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        entry = (priority, seq, fut)
        heapq.heappush(self._waiters, entry)
        try:
            await fut
        except BaseException:
            if fut.done() and not fut.cancelled() and fut.exception() is None:
                self.release()  # the turn was handed over just as we were cancelled
            elif entry in self._waiters:
                self._waiters.remove(entry)
                heapq.heapify(self._waiters)
            raise

    def release(self) -> None:
        while self._waiters:
            _, _, fut = heapq.heappop(self._waiters)
            if not fut.done():
                fut.set_result(None)  # handed over: `held` stays True
                return
        self.held = False

    def evict(self, priority: int, error: Callable[[], BaseException]) -> None:
        """Fail every waiter of `priority` (interim frames that a final now comes before)."""
        keep = []
        for entry in self._waiters:
            if entry[0] == priority and not entry[2].done():
                entry[2].set_exception(error())
            else:
                keep.append(entry)
        heapq.heapify(keep)
        self._waiters = keep
