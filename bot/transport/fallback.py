"""Chats that refused a draft are remembered (bounded, with a TTL) so later answers edit at once."""

from __future__ import annotations

from collections import OrderedDict

from bot.clock import Clock


class DraftRefusals:
    def __init__(self, clock: Clock, ttl: float, max_chats: int = 10_000) -> None:
        self._clock = clock
        self._ttl = ttl
        self._max = max_chats
        self._until: OrderedDict[int, float] = OrderedDict()

    def refused(self, chat_id: int) -> None:
        self._until[chat_id] = self._clock.now() + self._ttl
        self._until.move_to_end(chat_id)
        while len(self._until) > self._max:
            self._until.popitem(last=False)

    def draftless(self, chat_id: int) -> bool:
        until = self._until.get(chat_id)
        if until is None:
            return False
        if until <= self._clock.now():
            del self._until[chat_id]
            return False
        return True
