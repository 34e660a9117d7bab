"""The time/size throttle of interim frames, alone, on an injected clock."""

from __future__ import annotations

import asyncio

from bot.transport.throttle import FrameSpacing, FrameThrottle
from tests.fakes.clock import FakeClock

SPACING = FrameSpacing(min_interval=0.25, min_chars=8, max_interval=1.0)


async def due_after(clock: FakeClock, throttle: FrameThrottle, dirty: asyncio.Event,
                    *, feed: list[tuple[float, int]] | None = None) -> float:
    """How long `wait` took, advancing the clock in 10 ms steps and feeding (at, chars)."""
    start = clock.now()
    feed = sorted(feed or [])
    waiting = asyncio.create_task(throttle.wait(dirty, lambda: False))
    while not waiting.done():
        while feed and clock.now() - start >= feed[0][0] - 1e-9:
            throttle.grew(feed.pop(0)[1])
            dirty.set()
        await clock.advance(0.01)
    return round(clock.now() - start - 0.01, 2)  # the step that saw it done


async def test_a_first_frame_is_due_at_once() -> None:
    clock = FakeClock()
    throttle = FrameThrottle(SPACING, clock)
    await asyncio.wait_for(throttle.wait(asyncio.Event(), lambda: False), 1)


async def test_enough_new_text_goes_at_the_min_interval() -> None:
    clock = FakeClock()
    throttle, dirty = FrameThrottle(SPACING, clock), asyncio.Event()
    throttle.sent()
    throttle.grew(8)
    assert await due_after(clock, throttle, dirty) == 0.25


async def test_too_little_text_waits_for_more_or_for_the_max_interval() -> None:
    clock = FakeClock()
    throttle, dirty = FrameThrottle(SPACING, clock), asyncio.Event()
    throttle.sent()
    throttle.grew(3)
    # 3 characters are not worth a frame: it waits, wakes on the delta that makes 8, goes.
    assert await due_after(clock, throttle, dirty, feed=[(0.6, 5)]) == 0.6
    throttle.sent()
    throttle.grew(1)  # nothing more comes: one character still shows after the max interval
    assert await due_after(clock, throttle, dirty) == 1.0


async def test_text_counted_before_a_frame_does_not_count_after_it() -> None:
    clock = FakeClock()
    throttle, dirty = FrameThrottle(SPACING, clock), asyncio.Event()
    throttle.grew(100)
    throttle.sent()
    throttle.grew(7)
    assert await due_after(clock, throttle, dirty) == 1.0


async def test_closing_ends_the_wait() -> None:
    clock = FakeClock()
    throttle, dirty = FrameThrottle(SPACING, clock), asyncio.Event()
    throttle.sent()
    closing = False
    waiting = asyncio.create_task(throttle.wait(dirty, lambda: closing))
    await clock.advance(0.3)
    assert not waiting.done()
    closing = True
    dirty.set()
    await clock.advance(0)
    await asyncio.wait_for(waiting, 1)
