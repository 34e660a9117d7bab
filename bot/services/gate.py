"""One answer at a time per conversation; later messages wait their turn, in order, bounded."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from bot.storage import ConversationKey


class ConversationBusy(Exception):
    """More messages are waiting than the queue allows."""


@dataclass
class _Slot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # the running answer plus those waiting


class ConversationGate:
    def __init__(self, queue_max: int) -> None:
        self._queue_max = queue_max
        self._slots: dict[ConversationKey, _Slot] = {}

    def waiting(self, key: ConversationKey) -> int:
        slot = self._slots.get(key)
        return max(0, slot.users - 1) if slot else 0

    @contextlib.asynccontextmanager
    async def turn(self, key: ConversationKey) -> AsyncIterator[None]:
        slot = self._slots.setdefault(key, _Slot())
        if slot.users > self._queue_max:
            raise ConversationBusy
        slot.users += 1
        try:
            async with slot.lock:  # asyncio.Lock wakes waiters in FIFO order
                yield
        finally:
            slot.users -= 1
            if slot.users == 0:
                self._slots.pop(key, None)
