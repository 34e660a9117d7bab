"""When an answer's next interim frame is due by its own text: the time/size throttle.

The chat's budget says when a frame may go; this says when one is worth sending. A frame every
token would spend the budget on one-word steps, and a frame only on size would leave a slow
model's last words unseen for long: so a frame waits `min_interval` after the last one until
`min_chars` new characters arrived, and goes after `max_interval` whatever arrived.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass

from bot.clock import Clock, wait_event


@dataclass(frozen=True)
class FrameSpacing:
    min_interval: float = 0.25
    min_chars: int = 8
    # Without enough new characters a frame still goes out after this long.
    max_interval: float = 1.0


class FrameThrottle:
    """Counts the characters an answer received and when its last frame went out."""

    def __init__(self, spacing: FrameSpacing, clock: Clock) -> None:
        self._spacing = spacing
        self._clock = clock
        self._received = 0
        self._last_at = float("-inf")
        self._last_chars = 0

    def grew(self, chars: int) -> None:
        self._received += chars

    def sent(self) -> None:
        self._last_at = self._clock.now()
        self._last_chars = self._received

    async def wait(self, dirty: asyncio.Event, closing: Callable[[], bool]) -> None:
        """Until the next frame is due, or `closing()`; `dirty` is set by each new delta (and
        cleared here while too little text arrived)."""
        spacing = self._spacing
        while not closing():
            since = self._clock.now() - self._last_at
            grown = self._received - self._last_chars
            if since >= spacing.max_interval or (since >= spacing.min_interval
                                                 and grown >= spacing.min_chars):
                return
            if since < spacing.min_interval:
                await self._clock.sleep(spacing.min_interval - since)
                continue
            # Too little new text yet: wake on the next delta, or at the max interval.
            dirty.clear()
            await wait_event(self._clock, dirty, spacing.max_interval - since)
