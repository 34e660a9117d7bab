"""How far behind the event loop runs, and how much of the interim-frame pace it can afford.

Every answer, its model stream and its frames share one event loop. Past what one process can
carry (about 1,000 answers streaming at once on one core), work piles up, and every callback
runs late: a new message waits to be read, a final waits to be sent, a webhook times out. The
only work that can give way is interim frames: they cost a Bot API call each, and the next one
carries all their text anyway.

`LoopLoad` watches how late a short timer fires and keeps `share`: the part of each chat's
interim-frame pace the scheduler grants now. It falls by a third (to a fifth at least) whenever
the loop is late by more than `target`, and climbs back by a tenth of the full pace per quiet
tick (full pace again within half a second of quiet): the loop stays responsive and frames come
back as soon as it has room. Finals, model streams and new messages are never held back, nor is
an answer's first text.

New answers give way before running ones (`intake`): while updates wait to be taken in
(`backlog`), a late tick cuts the intake first and leaves the share alone, and a quiet tick
restores the share before the intake. Starting an answer costs ~1.5 ms of the loop, its
frames ~0.4 ms each; taking 1,000 questions in at full intake while the first answers stream
spaced those answers' frames out for the whole intake (3-4 frames in their first 4 s, where
the last ones got 6). An answer taken in a second later streams at its full pace instead.

Chats are spaced by the share *integrated* over time (`granted`), not by its value at the
instant a frame is offered: the share swings within a fraction of a second, and a chat whose
offers happened to land in its dips got one frame in four seconds while others got five (the
least-served chat of the 1,000-chat benchmark at 19-38 % of its allowance). Integrated, every
chat waiting for a frame is credited with the same frame time, whenever it asks.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Callable

import structlog

from bot.clock import Clock

log = structlog.get_logger(__name__)

TICK = 0.05
TARGET = 0.04
MIN_SHARE = 0.2
DECREASE = 2 / 3
INCREASE = 0.1
MIN_INTAKE = 0.2


class LoopLoad:
    def __init__(self, clock: Clock, *, tick: float = TICK, target: float = TARGET) -> None:
        self._clock = clock
        self._tick = tick
        self._target = target
        self._task: asyncio.Task[None] | None = None
        self._share = 1.0
        # The integral of the share over time, up to `_granted_at`.
        self._granted = 0.0
        self._granted_at = clock.now()
        self.late = 0.0  # how late the last tick fired, seconds
        # The part of the full intake of new updates granted now (see `Admission`), and how
        # many wait to be taken in: the intake gives way first only while some wait.
        self.intake = 1.0
        self.backlog: Callable[[], int] = lambda: 0

    @property
    def share(self) -> float:
        """The part of each chat's interim-frame pace granted now."""
        return self._share

    @share.setter
    def share(self, value: float) -> None:
        now = self._clock.now()
        self._granted = self.granted(now)
        self._granted_at = now
        self._share = value

    def granted(self, now: float) -> float:
        """Seconds of full-pace frame time granted from an arbitrary origin up to `now`: the
        share integrated over time. A chat may send its next interim frame once this grew by
        one frame spacing since its last."""
        return self._granted + self._share * (now - self._granted_at)

    def observe(self, late: float) -> None:
        """One tick that fired `late` seconds after it was due."""
        self.late = late
        was = self.share, self.intake
        if late > self._target:
            if self.intake > MIN_INTAKE and self.backlog() > 0:
                self.intake = max(MIN_INTAKE, self.intake * DECREASE)
            else:
                self.share = max(MIN_SHARE, self.share * DECREASE)
        elif self.share < 1.0:
            # Rounded: 0.2 plus eight tenths is 0.9999999999999999 in floats, a tick short.
            self.share = min(1.0, round(self.share + INCREASE, 9))
        else:
            self.intake = min(1.0, round(self.intake + INCREASE, 9))
        # Logged once a spell: when anything first gives way, and when all of it is back.
        now = self.share, self.intake
        if was == (1.0, 1.0) and now != was:
            log.info("loop.busy", late_ms=round(late * 1000), frame_share=round(self.share, 2),
                     intake=round(self.intake, 2))
        elif was != (1.0, 1.0) and now == (1.0, 1.0):
            log.info("loop.calm")

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._watch(), name="loop-load")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None

    async def _watch(self) -> None:
        while True:
            due = self._clock.now() + self._tick + self._clock.grain
            await self._clock.sleep(self._tick)
            self.observe(max(0.0, self._clock.now() - due))
