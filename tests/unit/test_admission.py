"""A burst of updates begins a few per event-loop iteration, in arrival order, none lost."""

from __future__ import annotations

import asyncio
from typing import Any

from aiogram.types import TelegramObject

from bot.middlewares.admission import Admission
from bot.transport.load import LoopLoad
from tests.fakes.clock import FakeClock


async def test_a_burst_begins_a_few_per_iteration_in_order() -> None:
    gate = Admission(per_iteration=3)
    begun: list[int] = []
    iteration = 0
    per_iteration: dict[int, int] = {}

    async def handler(event: TelegramObject, data: dict[str, Any]) -> int:
        begun.append(data["n"])
        per_iteration[iteration] = per_iteration.get(iteration, 0) + 1
        return int(data["n"])

    tasks = [asyncio.ensure_future(gate(handler, TelegramObject(), {"n": n})) for n in range(10)]
    while not all(t.done() for t in tasks):
        await asyncio.sleep(0)  # one event-loop iteration
        iteration += 1
    assert [t.result() for t in tasks] == list(range(10))
    assert begun == list(range(10))
    assert max(per_iteration.values()) <= 3 and len(per_iteration) >= 4


async def test_a_cancelled_wait_gives_its_turn_to_the_next() -> None:
    gate = Admission(per_iteration=1)
    begun: list[int] = []

    async def handler(event: TelegramObject, data: dict[str, Any]) -> None:
        begun.append(data["n"])

    tasks = [asyncio.ensure_future(gate(handler, TelegramObject(), {"n": n})) for n in range(3)]
    await asyncio.sleep(0)
    tasks[1].cancel()
    await asyncio.wait_for(asyncio.gather(*tasks, return_exceptions=True), 1)
    assert begun == [0, 2] and gate.waiting == 0


async def test_updates_apart_in_time_never_wait() -> None:
    gate = Admission(per_iteration=1)
    begun: list[int] = []

    async def handler(event: TelegramObject, data: dict[str, Any]) -> None:
        begun.append(data["n"])

    for n in range(3):
        task = asyncio.ensure_future(gate(handler, TelegramObject(), {"n": n}))
        await asyncio.sleep(0)
        assert task.done()  # began in the iteration it arrived
        await asyncio.sleep(0)
    assert begun == [0, 1, 2]


async def test_a_busy_loop_takes_fewer_in_while_updates_wait() -> None:
    load = LoopLoad(FakeClock())
    gate = Admission(per_iteration=5, load=load)
    iteration = 0
    per_iteration: dict[int, int] = {}

    async def handler(event: TelegramObject, data: dict[str, Any]) -> None:
        per_iteration[iteration] = per_iteration.get(iteration, 0) + 1

    tasks = [asyncio.ensure_future(gate(handler, TelegramObject(), {})) for _ in range(30)]
    await asyncio.sleep(0)
    iteration += 1
    assert load.backlog() == 25  # the loop load sees who waits
    for _ in range(4):
        load.observe(1.0)  # late ticks: the intake gives way to its least
    assert load.share == 1.0
    while not all(t.done() for t in tasks):
        await asyncio.sleep(0)
        iteration += 1
    assert per_iteration[0] == 5
    assert set(list(per_iteration.values())[1:]) == {1}  # one per iteration, none lost
    assert sum(per_iteration.values()) == 30 and load.backlog() == 0
