"""A manual clock: time moves only when a test calls `advance`, so pacing tests run instantly."""

from __future__ import annotations

import asyncio
import heapq
import itertools


async def settle(rounds: int = 50) -> None:
    """Let every runnable task run until it blocks again (in-process fakes need only yields)."""
    for _ in range(rounds):
        await asyncio.sleep(0)


class FakeClock:
    grain = 0.0  # sleeps end exactly when due

    def __init__(self, start: float = 1000.0) -> None:
        self._now = start
        self._sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
        self._seq = itertools.count()

    def now(self) -> float:
        return self._now

    async def sleep(self, seconds: float) -> None:
        if seconds <= 0:
            await asyncio.sleep(0)
            return
        fut: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(self._sleepers, (self._now + seconds, next(self._seq), fut))
        await fut

    async def advance(self, seconds: float) -> None:
        """Move time forward, waking sleepers in deadline order and letting each settle."""
        target = self._now + seconds
        await settle()
        while self._sleepers and self._sleepers[0][0] <= target:
            deadline, _, fut = heapq.heappop(self._sleepers)
            if fut.done():
                continue  # a cancelled sleep (the sleeper gave up waiting)
            self._now = max(self._now, deadline)
            fut.set_result(None)
            await settle()
        self._now = target
        await settle()

    async def stall(self, seconds: float) -> None:
        """The loop was busy elsewhere: time passes and only then do due sleepers wake, late."""
        self._now += seconds
        await self.advance(0)
