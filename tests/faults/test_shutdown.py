"""App.drain (what SIGTERM/SIGINT run, see test_process): answers in flight get the grace period,
then are finalized with a note; messages still waiting their turn are told to come back, and
nothing new starts after the grace period."""

from __future__ import annotations

import asyncio

from bot.services.notes import SHUTDOWN_NOTE, WAITING_SHUTDOWN_NOTE
from tests.fakes.llm import Pause

from .rig import USER, rig


async def test_answer_within_the_grace_period_completes() -> None:
    async with rig() as r:
        done = asyncio.Event()
        r.llm.script(["Almost ", Pause(done), "there."])
        r.tg.private_text(USER, "go")
        await r.drafted(USER, "Almost")
        drain = asyncio.create_task(r.app.drain(5))
        done.set()
        await asyncio.wait_for(drain, 5)
        assert r.tg.texts(USER) == ["Almost there."]


async def test_grace_over_in_flight_noted_and_queued_ones_told_to_resend() -> None:
    async with rig(queue_max=3) as r:
        r.llm.script(["Half an answer", Pause(asyncio.Event())])
        r.tg.private_text(USER, "first")
        await r.drafted(USER, "Half an answer")
        r.tg.private_text(USER, "second, queued behind the first")
        await r.tg.wait_for(lambda calls: len(r.app.chat.tasks) == 2)
        started = asyncio.get_running_loop().time()
        await asyncio.wait_for(r.app.drain(0.3), 5)
        assert asyncio.get_running_loop().time() - started < 3  # not the 10 s safety net
        assert r.tg.texts(USER) == [f"Half an answer\n\n{SHUTDOWN_NOTE}", WAITING_SHUTDOWN_NOTE]
        assert len(r.llm.requests) == 1  # nothing new started after the grace period
