"""How often each model stream is read, so that one process keeps up with many answers."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from bot.clock import Clock
from bot.llm import Pace

READS_PER_SECOND = 2000.0
MAX_INTERVAL = 0.5


class ReadPacing:
    """Spreads one budget of network reads per second over all the answers streaming.

    Read eagerly, every token is one wake-up and one parse (~25 µs of CPU even with a C
    parser): fine for a few answers, more than a core for a thousand at 40 tokens/s. Once an
    answer shows text, its stream is read at most every `streaming / reads_per_second`
    seconds (at most `max_interval`), and a read takes every token that arrived meanwhile.

    What it costs the user: nothing with few answers (10 answers: 5 ms, below the gap between
    two tokens); under load, a frame shows text up to one interval older and the final comes
    up to one interval later (1,000 answers: 0.5 s). The first token is never held: the read
    that brings it happens as soon as it arrives.

    Each stream's reads keep a phase of their own, drawn when its text first shows: answers
    that start together (a busy minute, a benchmark) would otherwise all be read in the same
    instant, every interval, and each such wave stalls the event loop for all of them.
    """

    def __init__(self, clock: Clock, *, reads_per_second: float = READS_PER_SECOND,
                 max_interval: float = MAX_INTERVAL, rng: random.Random | None = None) -> None:
        self._clock = clock
        self._rng = rng or random.Random()
        self._reads_per_second = reads_per_second
        self._max_interval = max_interval
        self.streaming = 0

    def interval(self) -> float:
        return min(self._max_interval, self.streaming / self._reads_per_second)

    @contextmanager
    def one_stream(self) -> Iterator[None]:
        self.streaming += 1
        try:
            yield
        finally:
            self.streaming -= 1

    def pace(self, showing: Callable[[], bool]) -> Pace:
        """The wait before each read of one stream; `showing()` is True once text is shown."""
        last_read = self._clock.now()
        phased = False

        async def wait() -> None:
            nonlocal last_read, phased
            if showing():
                interval = self.interval()
                if not phased:  # the first paced read: somewhere within one interval
                    phased = True
                    interval *= self._rng.random()
                delay = last_read + interval - self._clock.now()
                if delay > 0:
                    await self._clock.sleep(delay)
            last_read = self._clock.now()

        return wait
