"""One answer at a time per conversation; later messages wait their turn, in order, bounded."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass, field
from types import TracebackType

from bot.storage import ConversationKey


class ConversationBusy(Exception):
    """More messages are waiting than the queue allows."""


@dataclass
class _Slot:
    lock: asyncio.Lock = field(default_factory=asyncio.Lock)
    users: int = 0  # the running answer plus those waiting


class Ticket:
    """A place in a conversation's queue, taken at once (`ConversationGate.reserve`) and used
    later (`async with ticket:` waits for the turn and holds it). `release` gives the place
    back; it runs on leaving the block, and must also run if the block is never entered (a
    task cancelled before it starts), so it may be called any number of times."""

    def __init__(self, gate: ConversationGate, key: ConversationKey, slot: _Slot) -> None:
        self._gate = gate
        self._key = key
        self._slot = slot
        self._released = False

    async def __aenter__(self) -> None:
        await self._slot.lock.acquire()  # asyncio.Lock wakes waiters in FIFO order

    async def __aexit__(self, exc_type: type[BaseException] | None,
                        exc: BaseException | None, tb: TracebackType | None) -> None:
        self._slot.lock.release()
        self.release()

    def release(self) -> None:
        if self._released:
            return
        self._released = True
        self._slot.users -= 1
        if self._slot.users == 0:
            self._gate._slots.pop(self._key, None)


class ConversationGate:
    def __init__(self, queue_max: int) -> None:
        self._queue_max = queue_max
        self._slots: dict[ConversationKey, _Slot] = {}

    def waiting(self, key: ConversationKey) -> int:
        slot = self._slots.get(key)
        return max(0, slot.users - 1) if slot else 0

    def reserve(self, key: ConversationKey) -> Ticket:
        """A place in `key`'s queue behind those already taken (ConversationBusy if full)."""
        slot = self._slots.setdefault(key, _Slot())
        if slot.users > self._queue_max:
            raise ConversationBusy
        slot.users += 1
        return Ticket(self, key, slot)
