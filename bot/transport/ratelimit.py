"""Rate primitives for the outbound scheduler: a token bucket and a sliding window.

Both charge a call from when it is granted (`begin`) until it ends (`end`), so a call in flight
already counts: no network jitter can make two calls look closer than the limit allows.
"""

from __future__ import annotations

import math
from collections import deque

# Delays shorter than this are float rounding, not a reason to sleep again.
EPSILON = 1e-9


class TokenBucket:
    """`rate` calls per second with bursts of `capacity`; a call is charged when it ends."""

    def __init__(self, rate: float, capacity: float, now: float) -> None:
        self.rate, self.capacity, self.tokens, self.stamp = rate, capacity, capacity, now
        self.inflight = 0

    def _refill(self, now: float) -> None:
        if now > self.stamp:
            self.tokens = min(self.capacity, self.tokens + (now - self.stamp) * self.rate)
            self.stamp = now

    def delay(self, now: float, reserve: int = 0) -> float:
        """Seconds until one more call fits while `reserve` calls' worth stays unused."""
        self._refill(now)
        need = min(1 + reserve, self.capacity) + self.inflight
        return 0.0 if self.tokens >= need - EPSILON else (need - self.tokens) / self.rate

    def begin(self, now: float) -> None:
        self.inflight += 1

    def end(self, now: float) -> None:
        self.inflight -= 1
        self.take(now)

    def take(self, now: float, cost: float = 1.0) -> None:
        self._refill(now)
        self.tokens -= cost

    def idle(self, now: float) -> bool:
        self._refill(now)
        return self.inflight == 0 and self.tokens >= self.capacity

    @property
    def sustained(self) -> float:
        return self.rate


class SlidingWindow:
    """At most `count` calls in any `period` seconds.

    A call occupies the window from when it is granted until `period` after it ended: wherever
    Telegram's clock placed it in between, it cannot make the window look fuller than `count`.
    """

    def __init__(self, count: int, period: float) -> None:
        self.count, self.period = count, period
        self.stamps: deque[float] = deque()  # end times, in order
        self.inflight = 0

    def _forget(self, now: float) -> None:
        while self.stamps and self.stamps[0] <= now - self.period + EPSILON:
            self.stamps.popleft()

    def delay(self, now: float, reserve: int = 0) -> float:
        self._forget(now)
        reserve = min(reserve, self.count - 1)
        excess = len(self.stamps) + self.inflight + reserve - self.count + 1
        if excess <= 0:
            return 0.0
        if excess > len(self.stamps):
            return math.inf  # only an answer to a call in flight can make room
        return self.stamps[excess - 1] + self.period - now

    def begin(self, now: float) -> None:
        self.inflight += 1

    def end(self, now: float) -> None:
        self.inflight -= 1
        self.stamps.append(now)

    def idle(self, now: float) -> bool:
        self._forget(now)
        return self.inflight == 0 and not self.stamps

    @property
    def sustained(self) -> float:
        return self.count / self.period


Limiter = TokenBucket | SlidingWindow
