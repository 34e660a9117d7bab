"""A burst of updates is taken in a few at a time, so the event loop keeps turning meanwhile.

aiogram starts one task per update, and every task runs its first stretch (middlewares, the
handler; then, in the answer's own task one iteration later, the "Thinking…" draft up to its
network write, ~0.6 ms) in the same event-loop iteration as the others of its getUpdates
batch: 100 questions at once stall every answer already streaming for ~60 ms, and each later
stretch of that batch (opening 100 model streams) stalls it again. `Admission` lets at most
`per_iteration` updates begin per iteration; the rest wait their turn in arrival order, so a
burst costs latency only to its own tail.

Five per iteration, measured (bench_flood, 1,000 questions at once): event-loop lag p99
96-106 ms and first text p50 115-147 ms, against 119-140 ms and 209-214 ms with ten, and
143 ms and 191 ms with three (the burst then drags on past the answers' first seconds).

With a `LoopLoad`, a busy loop lowers that number (to one at least) while updates wait: new
answers give way before the frames of those already streaming (see `transport/load.py`).
"""

from __future__ import annotations

import asyncio
from collections import deque
from collections.abc import Awaitable, Callable
from typing import Any

from aiogram import BaseMiddleware
from aiogram.types import TelegramObject

from bot.transport.load import LoopLoad

PER_ITERATION = 5


class Admission(BaseMiddleware):
    def __init__(self, per_iteration: int = PER_ITERATION, load: LoopLoad | None = None) -> None:
        self._full = per_iteration
        self._load = load
        if load is not None:
            load.backlog = lambda: len(self._waiting)
        self._used = 0  # updates begun in this iteration
        self._waiting: deque[asyncio.Future[None]] = deque()
        self._turn_scheduled = False

    @property
    def waiting(self) -> int:
        return sum(1 for f in self._waiting if not f.done())

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if self._used < self._per_iteration() and not self._waiting:
            self._used += 1
        else:
            turn = asyncio.get_running_loop().create_future()
            self._waiting.append(turn)
            self._schedule_turn()
            await turn  # a cancelled wait is skipped when its turn comes
        self._schedule_turn()
        return await handler(event, data)

    def _per_iteration(self) -> int:
        if self._load is None:
            return self._full
        return max(1, round(self._full * self._load.intake))

    def _schedule_turn(self) -> None:
        # call_soon runs in the next iteration: the count below is per iteration.
        if not self._turn_scheduled:
            self._turn_scheduled = True
            asyncio.get_running_loop().call_soon(self._next_turn)

    def _next_turn(self) -> None:
        self._turn_scheduled = False
        self._used = 0
        allowed = self._per_iteration()
        while self._waiting and self._used < allowed:
            turn = self._waiting.popleft()
            if not turn.done():
                turn.set_result(None)
                self._used += 1
        if self._waiting:
            self._schedule_turn()
