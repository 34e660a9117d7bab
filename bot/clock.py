"""Time as a dependency: production uses the event loop's monotonic clock, tests a fake one."""

from __future__ import annotations

import asyncio
import time
from typing import Protocol


class Clock(Protocol):
    grain: float  # how much later than asked a sleep ends by design (not lateness)

    def now(self) -> float:
        """Monotonic seconds."""
        ...

    async def sleep(self, seconds: float) -> None: ...


# How early a timer may fire. asyncio's are exact; uvloop's (bot/eventloop.py) round the delay
# to whole milliseconds and count it from the millisecond the loop last read its clock, so they
# can fire ~1.5 ms early. A budget's wait that ended early sent calls just inside Telegram's
# windows: the 31st final of a second at the bot's 30/s drew a 429 in one 1,000-chat run in two.
TIMER_GRAIN = 0.002


class LoopClock:
    """Monotonic time, and sleeps on the running loop that never end before they are due."""

    grain = TIMER_GRAIN

    def now(self) -> float:
        # asyncio's loop.time() is time.monotonic(); uvloop's counts whole milliseconds, and a
        # call charged at a time rounded down could be granted its successor a little early.
        return time.monotonic()

    async def sleep(self, seconds: float) -> None:
        await asyncio.sleep(seconds + TIMER_GRAIN if seconds > 0 else 0)


async def wait_event(clock: Clock, event: asyncio.Event, timeout: float) -> bool:
    """Wait for `event` at most `timeout` seconds of `clock` time; True if it was set."""
    if event.is_set():
        return True
    waiter = asyncio.ensure_future(event.wait())
    sleeper = asyncio.ensure_future(clock.sleep(timeout))
    try:
        await asyncio.wait({waiter, sleeper}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
        sleeper.cancel()
    return event.is_set()
