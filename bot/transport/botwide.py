"""The bot's own budget across all chats: about 30 messages a second (Bots FAQ), and a pause of
the whole bot when 429s come from several chats at once.

Per-chat accounting keeps each chat within its limits, so 429s from many chats within a short
window mean the bot as a whole is flooding; then every chat waits the window out.

The 30 slots a second go to finals first, then to answers' first texts, then to other frames:
when 50 groups start answering in the same second, 30 first messages go at once and the other
20 take the slots the window frees a second later, not the slots after the first 30 groups'
next edits (the 200-chat benchmark: the groups' first text p99 from 1.58 s to 0.99 s).
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
# A first text promised a slot that has not come for it this long after it is taken for gone.
STALE_FIRST = 1.0


class BotBudget:
    def __init__(self, per_second: float, clock: Clock) -> None:
        self._clock = clock
        self._window = SlidingWindow(max(1, round(per_second)), 1.0)
        self._turns = Turns()  # finals waiting for a slot, in arrival order
        self._changed = asyncio.Event()
        self.paused_until = 0.0
        self._next_slot = 0.0  # the next slot handed to an interim frame refused one
        self._firsts: dict[int, float] = {}  # chat -> the slot its first text was promised
        self._first_due = math.inf  # the earliest of them
        self._first_last = -math.inf  # the latest: other frames queue behind it
        self._recent_429: dict[int, float] = {}  # chat -> when
        self.floods = 0

    def interim_delay(self, now: float, chat_id: int, *, first: bool = False) -> float:
        """0 if an interim message may take a slot now, else when to try again. Refused frames
        get successive slots at the bot's rate, first come first served, so they come back one
        by one rather than all at once. Finals waiting for a slot go first, then answers' first
        texts (`first`): a chat that shows nothing yet waits for no other chat's next frame."""
        wait = self._window.delay(now)
        spacing = 1 / self._window.sustained
        if self._first_due < now - STALE_FIRST:
            # A first text that did not come back for its slot (its answer ended) frees it.
            self._promise({c: s for c, s in self._firsts.items() if s > now - STALE_FIRST})
        if wait <= EPSILON and not self._turns.waiting:
            if first:
                if chat_id in self._firsts:
                    self._promise({c: s for c, s in self._firsts.items() if c != chat_id})
                return 0.0
            # A slot is free, unless a first text was promised it (or is about to come for it).
            if self._first_due > now + spacing:
                return 0.0
        opens = now + (wait if wait < math.inf else spacing)
        if first:
            slot = self._firsts.get(chat_id, 0.0)
            if slot <= now:  # not promised one yet, or it came and lost its slot: the next one
                # Not one per 1/30 s as other frames are: the window's own next free slot
                # after those promised already, where it is known (calls ended, not in flight).
                others = {c: s for c, s in self._firsts.items() if c != chat_id}
                ahead = self._window.delay(now, reserve=len(others))
                if ahead < math.inf:
                    slot = now + ahead
                else:  # only calls in flight: one slot at the bot's pace after the others
                    slot = max(max(others.values(), default=-math.inf) + spacing, opens)
                self._promise({**others, chat_id: slot})
            return max(MIN_RETRY, slot - now)
        # Other frames queue behind the first texts promised a slot.
        slot = max(self._next_slot, self._first_last + spacing, opens)
        self._next_slot = slot + spacing
        return max(MIN_RETRY, slot - now)

    def _promise(self, firsts: dict[int, float]) -> None:
        # Rebuilt only when a promise is made or kept (once per first text), so the check every
        # other frame makes is one comparison, however many first texts wait.
        self._firsts = firsts
        self._first_due = min(firsts.values(), default=math.inf)
        self._first_last = max(firsts.values(), default=-math.inf)

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
