"""LoopClock on both event loops: a paced wait never ends before it is due.

The outbound budgets sleep until a call fits Telegram's windows and then send; a sleep that
ended even a millisecond early put a call just inside a window (a 429 from the fake Bot API in
the 1,000-chat benchmark on uvloop). This test waits for real, but only asserts lower bounds,
which a slow machine cannot break.
"""

from __future__ import annotations

import random

import pytest

from bot import eventloop
from bot.clock import LoopClock


async def _early_wakes(delays: list[float]) -> list[float]:
    clock = LoopClock()
    early = []
    for delay in delays:
        start = clock.now()
        await clock.sleep(delay)
        if clock.now() - start < delay:
            early.append(delay)
    return early


@pytest.mark.parametrize("loop", ["asyncio", "uvloop"])
def test_sleeps_never_end_early(loop: eventloop.LoopChoice) -> None:
    rng = random.Random(7)
    # Odd fractions of a millisecond: what uvloop's timers round to the nearest whole one.
    delays = [rng.uniform(0.0002, 0.004) for _ in range(150)]
    assert eventloop.run(_early_wakes(delays), loop) == []
