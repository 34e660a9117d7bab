"""One answer at a time per conversation, FIFO, with a bounded queue."""

from __future__ import annotations

import asyncio

import pytest

from bot.services.gate import ConversationBusy, ConversationGate
from bot.storage import ConversationKey
from tests.fakes.clock import settle

KEY = ConversationKey(1)


async def test_turns_run_one_at_a_time_in_arrival_order_and_the_queue_is_bounded() -> None:
    gate = ConversationGate(queue_max=2)
    release = asyncio.Event()
    order: list[int] = []

    async def turn(n: int) -> None:
        async with gate.reserve(KEY):
            order.append(n)
            await release.wait()

    tasks = [asyncio.create_task(turn(n)) for n in range(3)]
    await settle()
    assert order == [0] and gate.waiting(KEY) == 2
    with pytest.raises(ConversationBusy):
        gate.reserve(KEY)
    async with gate.reserve(ConversationKey(2)):  # other conversations are not held up
        pass
    assert gate.waiting(ConversationKey(2)) == 0
    release.set()
    await asyncio.wait_for(asyncio.gather(*tasks), 5)
    assert order == [0, 1, 2] and gate.waiting(KEY) == 0
