"""One outbound budget per chat (plus one for the whole bot), so flood limits hold by design.

Every Bot API call that targets a chat goes through `OutboundScheduler.call`. Finals (the last
sendMessage/edit of an answer, overflow continuations) are queued ahead of interim frames and are
never dropped; interim frames are built lazily by the caller at send time, so a waiting frame
always carries the newest text (coalescing). A 429 pauses the chat for exactly `retry_after`.
"""

from __future__ import annotations

import asyncio
import itertools
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from enum import IntEnum, StrEnum
from typing import TypeVar

import structlog
from aiogram.exceptions import TelegramRetryAfter

from bot.clock import Clock

log = structlog.get_logger(__name__)
T = TypeVar("T")

MAX_FINAL_ATTEMPTS = 6


class Priority(IntEnum):
    FINAL = 0
    INTERIM = 1


class CallKind(StrEnum):
    MESSAGE = "message"  # sendMessage, editMessageText, deleteMessage
    DRAFT = "draft"  # sendMessageDraft, sendChatAction (reported to share one budget)


class FrameDropped(Exception):
    """An interim frame was not sent (flood window); the caller sends newer text later."""


@dataclass(frozen=True)
class Limits:
    chat_per_second: float = 1.0
    chat_burst: int = 3
    group_per_minute: int = 20
    draft_per_5s: int = 20
    draft_per_30s: int = 40
    global_per_second: float = 30.0


class TokenBucket:
    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate, self.capacity, self.tokens, self.stamp = rate, capacity, capacity, now

    def _refill(self, now: float) -> None:
        self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
        self.stamp = now

    def delay(self, now: float) -> float:
        self._refill(now)
        return 0.0 if self.tokens >= 1 else (1 - self.tokens) / self.rate

    def take(self, now: float) -> None:
        self._refill(now)
        self.tokens -= 1


class SlidingWindow:
    """At most `count` calls in any `period` seconds."""

    def __init__(self, count: int, period: float) -> None:
        self.count, self.period = count, period
        self.stamps: deque[float] = deque()

    def delay(self, now: float) -> float:
        while self.stamps and self.stamps[0] <= now - self.period:
            self.stamps.popleft()
        return 0.0 if len(self.stamps) < self.count else self.stamps[0] + self.period - now

    def take(self, now: float) -> None:
        self.stamps.append(now)


Limiter = TokenBucket | SlidingWindow


@dataclass
class _Chat:
    message: list[Limiter]
    draft: list[Limiter]
    paused_until: float = 0.0
    waiters: list[tuple[int, int]] = field(default_factory=list)  # (priority, seq), sorted
    changed: asyncio.Event = field(default_factory=asyncio.Event)


class OutboundScheduler:
    def __init__(self, limits: Limits, clock: Clock) -> None:
        self._limits = limits
        self._clock = clock
        self._chats: dict[int, _Chat] = {}
        self._global = TokenBucket(limits.global_per_second, limits.global_per_second, clock.now())
        self._global_paused_until = 0.0
        self._seq = itertools.count()
        self.retry_after_count = 0

    def _chat(self, chat_id: int, group: bool) -> _Chat:
        chat = self._chats.get(chat_id)
        if chat is None:
            lim, now = self._limits, self._clock.now()
            message: list[Limiter] = [TokenBucket(lim.chat_per_second, lim.chat_burst, now)]
            if group:
                message.append(SlidingWindow(lim.group_per_minute, 60.0))
            draft: list[Limiter] = [
                SlidingWindow(lim.draft_per_5s, 5.0),
                SlidingWindow(lim.draft_per_30s, 30.0),
            ]
            chat = self._chats[chat_id] = _Chat(message=message, draft=draft)
        return chat

    def paused_for(self, chat_id: int) -> float:
        now = self._clock.now()
        chat = self._chats.get(chat_id)
        until = max(self._global_paused_until, chat.paused_until if chat else 0.0)
        return max(0.0, until - now)

    async def _acquire(self, chat: _Chat, kind: CallKind, priority: Priority) -> None:
        ticket = (int(priority), next(self._seq))
        chat.waiters.append(ticket)
        chat.waiters.sort()
        chat.changed.set()
        try:
            while True:
                now = self._clock.now()
                if chat.waiters[0] != ticket:
                    chat.changed.clear()
                    await chat.changed.wait()
                    continue
                limiters = chat.draft if kind is CallKind.DRAFT else chat.message
                delay = max(
                    chat.paused_until - now,
                    self._global_paused_until - now,
                    self._global.delay(now),
                    *(lim.delay(now) for lim in limiters),
                )
                if delay <= 0:
                    for lim in limiters:
                        lim.take(now)
                    self._global.take(now)
                    return
                await self._sleep_or_change(chat, delay)
        finally:
            chat.waiters.remove(ticket)
            chat.changed.set()

    async def _sleep_or_change(self, chat: _Chat, delay: float) -> None:
        # A newly queued final must be able to overtake an interim frame that is waiting.
        chat.changed.clear()
        sleeper = asyncio.ensure_future(self._clock.sleep(delay))
        changed = asyncio.ensure_future(chat.changed.wait())
        try:
            await asyncio.wait({sleeper, changed}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            sleeper.cancel()
            changed.cancel()

    async def call(
        self,
        chat_id: int,
        send: Callable[[], Awaitable[T]],
        *,
        kind: CallKind = CallKind.MESSAGE,
        priority: Priority = Priority.FINAL,
        group: bool = False,
    ) -> T:
        """Run `send()` when the chat's budget allows; finals retry after a 429's window."""
        chat = self._chat(chat_id, group)
        attempt = 0
        while True:
            attempt += 1
            await self._acquire(chat, kind, priority)
            try:
                return await send()
            except TelegramRetryAfter as exc:
                self.retry_after_count += 1
                until = self._clock.now() + exc.retry_after
                chat.paused_until = max(chat.paused_until, until)
                log.warning("telegram.retry_after", chat_id=chat_id, retry_after=exc.retry_after,
                            priority=priority.name.lower(), attempt=attempt)
                if priority is Priority.INTERIM:
                    raise FrameDropped from exc
                if attempt >= MAX_FINAL_ATTEMPTS:
                    raise
