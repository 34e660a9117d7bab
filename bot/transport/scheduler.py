"""One outbound budget per chat (plus one for the whole bot), so flood limits hold by design.

Every Bot API call that targets a chat goes through `OutboundScheduler.call`: the answer frames
via `Outbound`, everything else (handler replies) via `budget.BudgetMiddleware` on the session.
Each rule below prevents a failure other bots reported (../shared/reference/telegram-streaming.md):

- One call in flight per chat, and a call counts against the limits from the moment it is granted
  until `period` after its answer is back. Telegram sees the call somewhere in between, so no
  network jitter can make two calls look closer together than the limits allow.
- Finals (the last sendMessage/edit of an answer, overflow continuations) wait their turn ahead
  of interim frames and are retried after each 429's window for as long as Telegram asks.
- Interim frames never wait for budget. If the chat cannot take one now, `FrameDropped.retry_in`
  says when it could, and the caller builds a fresh frame then: only the newest text is ever
  sent, and no frame goes out with text that went stale in a queue. `interim_wait` gives the
  same answer before the frame is built, so a refused frame costs no render.
- Interim frames are paced at the rate the limits sustain (after a short burst), evenly rather
  than in bursts and pauses, and leave one slot of every message limit to finals, so a final
  goes out at once.
- A 429 pauses its chat for exactly `retry_after` from when we learn of it; 429s from several
  chats at once pause the whole bot (`botwide.py`, with the bot's 30 messages a second).
  Waits are plain cancellable sleeps that hold only their own chat: a long window never blocks
  other chats, nor shutdown.
- Chats whose limiters are full again and that have nothing pending are forgotten, so memory
  follows the chats that are active, not every chat ever seen.
- When the event loop falls behind (too many answers for one process), interim frames are
  spaced further apart, by the share `load.LoopLoad` grants over the wait for each; finals are
  not.
- Interim frames leave some of the Bot API session's connections to everything else. A call
  waits in aiohttp's pool, first come first served, when every connection is busy; at 1,000
  answers frames kept the pool's 256 connections busy, and each answer's first text and each
  final waited 60-300 ms behind them. Frames hold at most 7/8 of the connections, so those
  find one free; a frame that finds the frames' share in use waits for one of it, in arrival
  order (a connection frees within about a round trip). Refused and retried instead, 2,400-3,700
  frames a run bounced, at a render and a wake-up each, and whichever chat retried at the
  right instant won: the least-served chat got 2-3 frames in 4 s while the median got 7.
"""

from __future__ import annotations

import asyncio
import itertools
import math
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from enum import IntEnum
from typing import TypeVar

import structlog
from aiogram.exceptions import TelegramRetryAfter

from bot.clock import Clock

from .botwide import MIN_RETRY, BotBudget
from .limits import CallKind, ChatBudget, Limits
from .load import LoopLoad
from .ratelimit import EPSILON

log = structlog.get_logger(__name__)
T = TypeVar("T")

# How often idle chats are looked for and forgotten.
SWEEP_EVERY = 30.0
BUSY_SHARE = 0.5
# The part of the session's connections interim frames leave to finals, first texts and handler
# replies (plus getUpdates and other calls outside the scheduler).
CONNECTION_RESERVE = 1 / 8
MIN_CONNECTION_RESERVE = 2


class Priority(IntEnum):
    FINAL = 0
    INTERIM = 1


class FrameDropped(Exception):
    """An interim frame was not sent; a newer frame may go out `retry_in` seconds from now."""

    def __init__(self, retry_in: float) -> None:
        super().__init__(f"interim frame not sent; retry in {retry_in:.2f}s")
        self.retry_in = retry_in


# Set while the scheduler runs a call, so BudgetMiddleware does not schedule it a second time.
GRANTED: ContextVar[bool] = ContextVar("outbound_granted", default=False)


class OutboundScheduler:
    def __init__(self, limits: Limits, clock: Clock, load: LoopLoad | None = None, *,
                 connections: int | None = None) -> None:
        """`connections`: how many the Bot API session opens at most (None: no limit)."""
        self._limits = limits
        self._clock = clock
        self._load = load
        # Interim frames that may give way hold one of these while in flight (see the docstring).
        self._frame_connections: asyncio.Semaphore | None = None
        if connections is not None:
            reserve = max(MIN_CONNECTION_RESERVE, round(connections * CONNECTION_RESERVE))
            self._frame_connections = asyncio.Semaphore(max(1, connections - reserve))
        self._chats: dict[int, ChatBudget] = {}
        self._bot = BotBudget(limits.global_per_second, clock)
        self._seq = itertools.count()
        self._last_sweep = clock.now()
        self.retry_after_count = 0

    # -- state -----------------------------------------------------------------------------
    @property
    def busy(self) -> bool:
        """The event loop has run late for a while (two late ticks in a row at least), not
        just once (one collector pause): interim frames are at half their pace or less."""
        return self._load is not None and self._load.share <= BUSY_SHARE

    @property
    def global_floods(self) -> int:
        """How often 429s from several chats at once paused the whole bot."""
        return self._bot.floods

    @property
    def chat_count(self) -> int:
        return len(self._chats)

    def _chat(self, chat_id: int, group: bool) -> ChatBudget:
        now = self._clock.now()
        if now - self._last_sweep >= SWEEP_EVERY:
            self._sweep(now)
        chat = self._chats.get(chat_id)
        if chat is None:
            chat = self._chats[chat_id] = ChatBudget.new(self._limits, group=group, now=now)
        return chat

    def _sweep(self, now: float) -> None:
        self._last_sweep = now
        idle = [chat_id for chat_id, chat in self._chats.items() if chat.idle(now)]
        for chat_id in idle:
            del self._chats[chat_id]

    def paused_for(self, chat_id: int) -> float:
        now = self._clock.now()
        chat = self._chats.get(chat_id)
        until = max(self._bot.paused_until, chat.paused_until if chat else 0.0)
        return max(0.0, until - now)

    def interim_wait(self, chat_id: int, kind: CallKind, *, shed: bool = True) -> float:
        """0 if an interim frame of `kind` would be sent now, else how long until it might: what
        `call` would answer with `FrameDropped`, asked before the frame is built. A render
        refused after it was made is CPU thrown away, and at 1,000 answers most offers are."""
        chat = self._chats.get(chat_id)
        if chat is None:
            return 0.0  # a chat the scheduler does not know yet has its whole budget
        share = self._load.share if self._load is not None and shed else 1.0
        return self._interim_delay(chat_id, chat, kind, share, first=not shed)

    # -- the one entry point ---------------------------------------------------------------
    async def call(
        self,
        chat_id: int,
        send: Callable[[], Awaitable[T]],
        *,
        kind: CallKind = CallKind.MESSAGE,
        priority: Priority = Priority.FINAL,
        group: bool = False,
        shed: bool = True,
    ) -> T:
        """Run `send()` within the chat's budget.

        A final waits for its turn and is retried after each 429's window; an interim frame is
        sent now or not at all (`FrameDropped`). `shed=False`: an interim frame that keeps its
        full pace while the loop is busy (an answer's first text: how soon it shows matters most).
        """
        chat = self._chat(chat_id, group)
        if priority is Priority.INTERIM:
            return await self._interim(chat_id, chat, kind, send, shed)
        return await self._final(chat_id, chat, kind, send)

    async def _interim(
        self, chat_id: int, chat: ChatBudget, kind: CallKind, send: Callable[[], Awaitable[T]],
        shed: bool,
    ) -> T:
        share = self._load.share if self._load is not None and shed else 1.0
        retry = self._interim_delay(chat_id, chat, kind, share, first=not shed)
        if retry > 0:
            raise FrameDropped(retry)
        if shed and self._frame_connections is not None:
            async with self._frame_connections:
                return await self._interim_turn(chat_id, chat, kind, send, share, shed)
        return await self._interim_turn(chat_id, chat, kind, send, share, shed)

    async def _interim_turn(
        self, chat_id: int, chat: ChatBudget, kind: CallKind, send: Callable[[], Awaitable[T]],
        share: float, shed: bool,
    ) -> T:
        if not chat.turns.try_acquire():
            if chat.turns.waiting:  # a final is queued: it goes first
                raise FrameDropped(self._after_finals(chat, kind))
            # Only a call in flight is ahead (one round trip): wait for its answer.
            await chat.turns.acquire(Priority.INTERIM, next(self._seq))
        try:
            retry = self._interim_delay(chat_id, chat, kind, share, first=not shed)
            if retry > 0:
                raise FrameDropped(retry)
            try:
                return await self._send(chat_id, chat, kind, send, interim=True, shed=shed)
            except TelegramRetryAfter as exc:
                raise FrameDropped(float(exc.retry_after)) from exc
        finally:
            chat.turns.release()

    async def _final(
        self, chat_id: int, chat: ChatBudget, kind: CallKind, send: Callable[[], Awaitable[T]]
    ) -> T:
        chat.turns.evict(Priority.INTERIM, lambda: FrameDropped(self._after_finals(chat, kind)))
        seq = next(self._seq)
        await chat.turns.acquire(Priority.FINAL, seq)
        try:
            while True:
                await self._wait_chat(chat, kind)
                if kind is CallKind.MESSAGE:
                    await self._bot.wait(seq)
                try:
                    return await self._send(chat_id, chat, kind, send)
                except TelegramRetryAfter:
                    continue  # the chat (or the bot) is paused now: try again after the window
        finally:
            chat.turns.release()

    # -- waiting -----------------------------------------------------------------------------
    def _interim_delay(self, chat_id: int, chat: ChatBudget, kind: CallKind, share: float, *,
                       first: bool = False) -> float:
        """0 if an interim frame may go now, else seconds until one might (`first`: an
        answer's first text)."""
        now = self._clock.now()
        paused = max(chat.paused_until, self._bot.paused_until) - now
        if paused > EPSILON:
            return paused
        delay = chat.interim_delay(kind, now)
        if delay > EPSILON:
            return max(MIN_RETRY, delay if delay < math.inf else chat.frame_spacing(kind))
        delay = chat.load_delay(kind, self._granted(now), share)
        if delay > EPSILON:
            # At most one frame spacing: if the loop calms down meanwhile, the wider spacing it
            # asked for shrinks and the frame may go sooner.
            return max(MIN_RETRY, min(delay, chat.frame_spacing(kind)))
        if kind is CallKind.MESSAGE:
            return self._bot.interim_delay(now, chat_id, first=first)
        return 0.0

    def _granted(self, now: float) -> float:
        return self._load.granted(now) if self._load is not None else now

    def _after_finals(self, chat: ChatBudget, kind: CallKind) -> float:
        return max(MIN_RETRY, chat.frame_spacing(kind))

    async def _wait_chat(self, chat: ChatBudget, kind: CallKind) -> None:
        # We hold the chat's turn: nothing else is in flight here, so every delay is finite.
        while True:
            now = self._clock.now()
            delay = max(chat.final_delay(kind, now), self._bot.paused_until - now)
            if delay <= EPSILON:
                return
            await self._clock.sleep(delay)

    # -- sending -----------------------------------------------------------------------------
    async def _send(
        self, chat_id: int, chat: ChatBudget, kind: CallKind, send: Callable[[], Awaitable[T]],
        interim: bool = False, shed: bool = True,
    ) -> T:
        now = self._clock.now()
        limiters = list(chat.begin(kind, now, self._granted(now) if interim else None,
                                   shed=shed))
        if kind is CallKind.MESSAGE:
            limiters.append(self._bot.begin(now))
        granted = GRANTED.set(True)
        try:
            return await send()
        except TelegramRetryAfter as exc:
            self._paused(chat_id, chat, exc.retry_after)
            raise
        finally:
            GRANTED.reset(granted)
            end = self._clock.now()
            for lim in limiters:
                lim.end(end)
            if kind is CallKind.MESSAGE:
                self._bot.ended()

    def _paused(self, chat_id: int, chat: ChatBudget, retry_after: float) -> None:
        now = self._clock.now()
        until = now + retry_after
        chat.paused_until = max(chat.paused_until, until)
        self.retry_after_count += 1
        flood = self._bot.saw_429(chat_id, now, until)
        log.warning("telegram.retry_after", chat_id=chat_id, retry_after=retry_after,
                    whole_bot=flood)

