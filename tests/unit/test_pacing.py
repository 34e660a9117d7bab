"""Read pacing on a manual clock: never before text shows, then one budget shared by all streams."""

from __future__ import annotations

import asyncio
import random

from bot.services.pacing import ReadPacing
from tests.fakes.clock import FakeClock, settle


def test_interval_grows_with_the_answers_streaming_and_is_capped() -> None:
    pacing = ReadPacing(FakeClock(), reads_per_second=2000, max_interval=0.5)
    seen = []
    for count in (1, 10, 200, 1000, 5000):
        pacing.streaming = count
        seen.append(pacing.interval())
    assert seen == [0.0005, 0.005, 0.1, 0.5, 0.5]


def test_one_stream_counts_while_it_streams_even_when_it_fails() -> None:
    pacing = ReadPacing(FakeClock())
    try:
        with pacing.one_stream():
            assert pacing.streaming == 1
            raise RuntimeError
    except RuntimeError:
        pass
    assert pacing.streaming == 0


class Phase(random.Random):
    """The phase a stream's reads are given: a fixed fraction of one interval."""

    def __init__(self, fraction: float) -> None:
        super().__init__()
        self.fraction = fraction

    def random(self) -> float:
        return self.fraction


async def test_nothing_waits_before_text_shows_then_reads_are_spaced() -> None:
    clock = FakeClock()
    pacing = ReadPacing(clock, reads_per_second=100, max_interval=0.5, rng=Phase(0.25))
    pacing.streaming = 20  # 0.2 s between two reads of one stream
    shown = False
    pace = pacing.pace(lambda: shown)

    await asyncio.wait_for(pace(), 1)  # first token still to come: at once
    await asyncio.wait_for(pace(), 1)
    shown = True
    waiting = asyncio.ensure_future(pace())  # the first paced read: at its phase, 0.05 s
    await settle()
    assert not waiting.done()
    await clock.advance(0.04)
    assert not waiting.done()
    await clock.advance(0.01)
    assert waiting.done()
    waiting = asyncio.ensure_future(pace())  # then a full interval apart
    await clock.advance(0.19)
    assert not waiting.done()
    await clock.advance(0.01)
    assert waiting.done()


async def test_streams_started_together_are_read_at_different_moments() -> None:
    clock = FakeClock()
    pacing = ReadPacing(clock, reads_per_second=100, rng=random.Random(7))
    pacing.streaming = 50  # 0.5 s between two reads of one stream
    paces = [pacing.pace(lambda: True) for _ in range(50)]
    waits = [asyncio.ensure_future(pace()) for pace in paces]
    done_at: list[float] = []
    for _ in range(10):  # ten slots of 50 ms
        await clock.advance(0.05)
        done_at += [clock.now()] * (sum(w.done() for w in waits) - len(done_at))
    assert len(done_at) == 50
    assert max(done_at.count(t) for t in set(done_at)) <= 15  # not one wave of 50


async def test_time_spent_elsewhere_counts_towards_the_interval() -> None:
    clock = FakeClock()
    pacing = ReadPacing(clock, reads_per_second=100, rng=Phase(1.0))
    pacing.streaming = 20
    pace = pacing.pace(lambda: True)
    await clock.advance(0.3)  # the consumer was busy longer than the interval
    before = clock.now()
    await asyncio.wait_for(pace(), 1)
    assert clock.now() == before
    waiting = asyncio.ensure_future(pace())  # read just now: the next waits a full interval
    await clock.advance(0.1)
    assert not waiting.done()
    await clock.advance(0.1)
    assert waiting.done()


async def test_with_few_answers_no_read_waits() -> None:
    clock = FakeClock()
    pacing = ReadPacing(clock)
    pacing.streaming = 1
    pace = pacing.pace(lambda: True)
    await clock.advance(0.025)  # the next token, 25 ms later (40 tokens/s)
    start = clock.now()
    await asyncio.wait_for(pace(), 1)
    assert clock.now() == start
