"""The event loop's load: interim frames give way while it runs late, and come back after."""

from __future__ import annotations

import asyncio
import contextlib

import pytest
from structlog.testing import capture_logs

from bot.transport.limits import CallKind, Limits
from bot.transport.load import MIN_INTAKE, MIN_SHARE, LoopLoad
from bot.transport.scheduler import FrameDropped, OutboundScheduler, Priority
from tests.fakes.clock import FakeClock, settle


def test_late_ticks_cut_the_share_quiet_ticks_restore_it() -> None:
    load = LoopLoad(FakeClock(), target=0.05)
    load.observe(0.04)
    assert load.share == 1.0  # within the target
    load.observe(0.2)
    assert round(load.share, 3) == 0.667
    for _ in range(10):
        load.observe(0.3)
    assert load.share == MIN_SHARE  # never nothing: a frame still shows progress now and then
    shares = []
    while load.share < 1.0:
        load.observe(0.0)
        shares.append(round(load.share, 2))
    assert shares == [min(1.0, round(MIN_SHARE + 0.1 * n, 2)) for n in range(1, len(shares) + 1)]
    assert len(shares) == 8  # full pace within 0.4 s of quiet, not a ninth tick later


async def test_the_watch_measures_how_late_its_tick_fires() -> None:
    clock = FakeClock()
    load = LoopLoad(clock, tick=0.05, target=0.05)
    load.start()
    await settle()
    await clock.advance(0.05)  # on time
    assert load.late == 0.0 and load.share == 1.0
    await clock.stall(0.25)  # busy elsewhere: the next tick, due in 50 ms, fires 200 ms late
    assert abs(load.late - 0.2) < 1e-9 and load.share < 1.0
    await load.stop()


async def frames_sent(load: LoopLoad | None, seconds: float) -> int:
    """A draft offered every 50 ms for `seconds`: how many the scheduler lets go."""
    clock = FakeClock()
    sched = OutboundScheduler(Limits(), clock, load)
    sent = 0

    async def send() -> None:
        nonlocal sent
        sent += 1

    for _ in range(round(seconds / 0.05)):
        with contextlib.suppress(FrameDropped):
            await sched.call(7, send, kind=CallKind.DRAFT, priority=Priority.INTERIM)
        await clock.advance(0.05)
    return sent


async def test_while_the_loop_is_late_interim_frames_are_spaced_by_the_share() -> None:
    calm = await frames_sent(None, 60)
    busy = LoopLoad(FakeClock())
    busy.share = 0.25
    loaded = await frames_sent(busy, 60)
    # Calm: 2 frames of burst, then the drafts' pace of 1.3/s. Busy: frames four spacings
    # apart, no burst: a quarter of that pace, 0.325/s.
    assert calm >= 2 + 1.3 * 58
    assert 0.325 * 60 - 1 <= loaded <= 0.325 * 60 + 2


class Busy:
    """A scheduler whose loop runs late: interim frames granted at `share` of their pace."""

    def __init__(self, share: float) -> None:
        self.clock = FakeClock()
        load = LoopLoad(self.clock)
        load.share = share
        self.sched = OutboundScheduler(Limits(), self.clock, load)
        self.sent: list[str] = []

    async def call(self, label: str, priority: Priority, shed: bool = True) -> bool:
        async def send() -> None:
            self.sent.append(label)

        try:
            await self.sched.call(7, send, kind=CallKind.DRAFT, priority=priority, shed=shed)
        except FrameDropped:
            return False
        return True


async def test_an_answers_first_text_keeps_its_pace_while_later_frames_give_way() -> None:
    busy = Busy(MIN_SHARE)
    # The "Thinking…" placeholder and the first text: at once, out of the burst.
    assert await busy.call("placeholder", Priority.INTERIM, shed=False)
    assert await busy.call("first text", Priority.INTERIM, shed=False)
    assert not await busy.call("more", Priority.INTERIM)  # the burst is not for a busy loop
    await busy.clock.advance(5 / 1.3 - 0.01)  # a fifth of the pace: five spacings apart
    assert not await busy.call("more", Priority.INTERIM)
    await busy.clock.advance(0.01)
    assert await busy.call("more", Priority.INTERIM)
    assert busy.sent == ["placeholder", "first text", "more"]


async def test_finals_are_not_held_back_by_the_frames_spacing() -> None:
    busy = Busy(MIN_SHARE)
    assert await busy.call("frame", Priority.INTERIM)  # the next frame is five spacings away
    assert not await busy.call("frame", Priority.INTERIM)
    start = busy.clock.now()
    assert await asyncio.wait_for(busy.call("final", Priority.FINAL), 1)
    assert busy.sent == ["frame", "final"] and busy.clock.now() == start


async def test_the_granted_frame_time_is_the_share_integrated_over_time() -> None:
    clock = FakeClock()
    load = LoopLoad(clock, target=0.05)
    start = load.granted(clock.now())
    await clock.advance(1.0)  # full share
    load.observe(0.2)  # late: two thirds from here
    await clock.advance(1.5)
    load.share = 0.2
    await clock.advance(2.0)
    assert load.granted(clock.now()) - start == pytest.approx(1.0 + 1.5 * 2 / 3 + 2.0 * 0.2)


def test_new_answers_give_way_before_the_frames_of_running_ones() -> None:
    load = LoopLoad(FakeClock(), target=0.05)
    waiting = 40
    load.backlog = lambda: waiting
    for _ in range(3):
        load.observe(0.2)
    assert load.share == 1.0 and round(load.intake, 3) == 0.296  # only the intake gave way
    load.observe(0.2)
    assert load.intake == MIN_INTAKE and load.share == 1.0
    load.observe(0.2)  # the intake cannot give more: now the frames do
    assert round(load.share, 3) == 0.667 and load.intake == MIN_INTAKE
    for _ in range(4):
        load.observe(0.0)
    assert load.share == 1.0 and load.intake == MIN_INTAKE  # frames come back first
    load.observe(0.0)
    assert round(load.intake, 3) == 0.3
    waiting = 0
    for _ in range(20):
        load.observe(0.0)
    load.observe(0.2)  # nothing waits: a late tick is the frames' again
    assert load.intake == 1.0 and round(load.share, 3) == 0.667


def test_a_busy_spell_is_logged_once_even_when_only_the_intake_gave_way() -> None:
    load = LoopLoad(FakeClock(), target=0.05)
    load.backlog = lambda: 40
    with capture_logs() as logs:
        for _ in range(3):
            load.observe(0.2)
        assert load.share == 1.0 and load.intake < 1.0
        for _ in range(20):
            load.observe(0.0)
    assert load.share == 1.0 and load.intake == 1.0
    assert [e["event"] for e in logs] == ["loop.busy", "loop.calm"]
    assert logs[0]["frame_share"] == 1.0 and logs[0]["intake"] == 0.67
