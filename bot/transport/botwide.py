"""The bot's own budget across all chats: about 30 messages a second (Bots FAQ), and a pause of
the whole bot when 429s come from several chats at once.

Per-chat accounting keeps each chat within its limits, so 429s from many chats within a short
window mean the bot as a whole is flooding; then every chat waits the window out.
"""

from __future__ import annotations

import asyncio
import math

from bot.clock import Clock

from .ratelimit import EPSILON, SlidingWindow
from .turns import Turns

# 429s from this many different chats within FLOOD_WINDOW seconds mean the bot is flooding.
FLOOD_CHATS = 3
FLOOD_WINDOW = 2.0
MIN_RETRY = 0.05


class BotBudget:
    def __init__(self, per_second: float, clock: Clock) -> None:
        self._clock = clock
        self._window = SlidingWindow(max(1, round(per_second)), 1.0)
        self._turns = Turns()  # finals waiting for a slot, in arrival order
        self._changed = asyncio.Event()
        self.paused_until = 0.0
        self._next_slot = 0.0  # the next slot handed to an interim frame refused one
        self._recent_429: dict[int, float] = {}  # chat -> when
        self.floods = 0

    def interim_delay(self, now: float) -> float:
        """0 if an interim message may take a slot now, else when to try again. Refused frames
        get successive slots at the bot's rate, first come first served, so they come back one
        by one rather than all at once; finals waiting for a slot go first."""
        wait = self._window.delay(now)
        if wait <= EPSILON and not self._turns.waiting:
            return 0.0
        spacing = 1 / self._window.sustained
        slot = max(self._next_slot, now + (wait if wait < math.inf else spacing))
        self._next_slot = slot + spacing
        return max(MIN_RETRY, slot - now)

    async def wait(self, seq: int) -> None:
        """Wait for a slot for a final (`seq`: its place in line). Only the first final in line
        waits on the clock; the others wait for their turn."""
        await self._turns.acquire(0, seq)
        try:
            while True:
                now = self._clock.now()
                delay = max(self.paused_until - now, self._window.delay(now))
                if delay <= EPSILON:
                    return
                if delay == math.inf:  # the window is full of calls in flight
                    self._changed.clear()
                    await self._changed.wait()
                else:
                    await self._clock.sleep(delay)
        finally:
            self._turns.release()

    def begin(self, now: float) -> SlidingWindow:
        """A message call starts; end it on the returned window, then call `ended`."""
        self._window.begin(now)
        return self._window

    def ended(self) -> None:
        self._changed.set()

    def saw_429(self, chat_id: int, now: float, until: float) -> bool:
        """A 429 from `chat_id` pauses it until `until`; True if the whole bot pauses too."""
        horizon = now - FLOOD_WINDOW
        self._recent_429 = {c: t for c, t in self._recent_429.items() if t > horizon}
        self._recent_429[chat_id] = now
        flood = len(self._recent_429) >= FLOOD_CHATS
        if flood and until > self.paused_until:
            self.paused_until = until
            self.floods += 1
        return flood
