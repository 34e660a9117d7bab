"""The outbound budget, on a manual clock: no real sleeps, every instant checked exactly.

The reference for "would Telegram have answered 429?" is the flood model of the fake Bot API
(`tests.fakes.telegram._Flood`), fed with arrival times anywhere between a call's start and end.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import random
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, fields

import pytest
from aiogram import Bot
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import SendMessage

from bot.config import LimitSettings
from bot.render import MarkdownStream
from bot.transport.answer import StreamOptions
from bot.transport.botwide import STALE_FIRST
from bot.transport.budget import BudgetMiddleware
from bot.transport.fallback import DraftRefusals
from bot.transport.limits import CallKind, Limits
from bot.transport.load import LoopLoad
from bot.transport.manager import StreamManager
from bot.transport.outbound import Outbound
from bot.transport.scheduler import SWEEP_EVERY, FrameDropped, OutboundScheduler, Priority
from bot.transport.target import ChatTarget
from tests.fakes.clock import FakeClock, settle
from tests.fakes.session import RecordingSession
from tests.fakes.telegram import FloodLimits, _Flood

DRAFT, MESSAGE = CallKind.DRAFT, CallKind.MESSAGE
FINAL, INTERIM = Priority.FINAL, Priority.INTERIM
TOKEN = "42:" + "x" * 35


@dataclass
class Sent:
    chat_id: int
    label: str
    kind: CallKind
    start: float
    end: float
    ok: bool


class Api:
    """A Bot API stand-in: records each call's start and end, can answer 429 or take time."""

    def __init__(self, clock: FakeClock) -> None:
        self.clock = clock
        self.calls: list[Sent] = []
        self.latency: float | Callable[[], float] = 0.0
        self.fail: dict[int, list[int]] = {}  # chat -> retry_after of the next calls

    def __call__(self, chat_id: int, label: str = "", kind: CallKind = MESSAGE,
                 ) -> Callable[[], Awaitable[str]]:
        async def send() -> str:
            start = self.clock.now()
            latency = self.latency() if callable(self.latency) else self.latency
            if latency:
                await self.clock.sleep(latency)
            queued = self.fail.get(chat_id)
            retry = queued.pop(0) if queued else None
            self.calls.append(Sent(chat_id, label, kind, start, self.clock.now(), retry is None))
            if retry is not None:
                method = SendMessage(chat_id=chat_id, text=label or "x")
                raise TelegramRetryAfter(method, "Too Many Requests: retry after", retry)
            return label
        return send

    def to(self, chat_id: int) -> list[Sent]:
        return [c for c in self.calls if c.chat_id == chat_id]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def sched(clock: FakeClock) -> OutboundScheduler:
    return OutboundScheduler(Limits(), clock)


@pytest.fixture
def api(clock: FakeClock) -> Api:
    return Api(clock)


def spawn(sched: OutboundScheduler, api: Api, chat_id: int, label: str = "", *,
          kind: CallKind = MESSAGE, priority: Priority = FINAL, group: bool = False,
          ) -> asyncio.Task[str]:
    return asyncio.create_task(sched.call(chat_id, api(chat_id, label, kind), kind=kind,
                                          priority=priority, group=group))


def max_in_window(times: list[float], period: float) -> int:
    """The most calls in any window (t - period, t], as Telegram counts them (give or take the
    float rounding of a manual clock advanced in 1,200 steps: a call on the window's edge is
    outside it)."""
    times = sorted(times)
    edge = period - 1e-6
    return max((sum(1 for u in times[: i + 1] if u > t - edge) for i, t in enumerate(times)),
               default=0)


def telegram_would_refuse(calls: list[Sent], seed: int) -> int:
    """Replay calls through the fake's flood model, each arriving somewhere in [start, end]."""
    rng = random.Random(seed)
    flood = _Flood(FloodLimits())
    method = {MESSAGE: "sendMessage", DRAFT: "sendMessageDraft"}
    arrivals = sorted((rng.uniform(c.start, c.end), c) for c in calls if c.ok)
    return sum(flood.admit(method[c.kind], c.chat_id, at) is not None for at, c in arrivals)


# -- interim frames: sent now or not at all (coalescing) --------------------------------------

async def test_interim_goes_out_at_once_when_the_budget_allows(
    sched: OutboundScheduler, api: Api, clock: FakeClock,
) -> None:
    assert await sched.call(1, api(1, "a", DRAFT), kind=DRAFT, priority=INTERIM) == "a"
    assert [(c.label, c.start) for c in api.calls] == [("a", clock.now())]


async def test_interims_never_queue_and_say_when_to_try_again(
    sched: OutboundScheduler, api: Api, clock: FakeClock,
) -> None:
    for i in range(2):  # the draft burst: the placeholder and the first text
        await sched.call(1, api(1, f"f{i}", DRAFT), kind=DRAFT, priority=INTERIM)
    with pytest.raises(FrameDropped) as dropped:
        await sched.call(1, api(1, "late", DRAFT), kind=DRAFT, priority=INTERIM)
    assert len(api.calls) == 2  # nothing was sent, nothing waits to be sent later
    # 40 per 30 s with a burst of 2 to pay back: (40 - 1) / 30 = 1.3 frames per second
    assert dropped.value.retry_in == pytest.approx(1 / 1.3)
    await clock.advance(dropped.value.retry_in - 0.01)
    with pytest.raises(FrameDropped):
        await sched.call(1, api(1, "early", DRAFT), kind=DRAFT, priority=INTERIM)
    await clock.advance(0.01)
    assert await sched.call(1, api(1, "newest", DRAFT), kind=DRAFT, priority=INTERIM) == "newest"


async def test_only_the_newest_text_follows_a_flood_window(clock: FakeClock) -> None:
    session = RecordingSession(clock.now)
    bot = Bot(TOKEN, session=session)
    sched = OutboundScheduler(Limits(), clock)
    manager = StreamManager(Outbound(bot, sched, clock), clock, DraftRefusals(clock, ttl=60),
                            "auto", StreamOptions())
    stream = manager.open(ChatTarget(chat_id=5, private=True), MarkdownStream())
    await stream.start()
    stream.push("Hello")
    await settle()
    session.fail("sendMessageDraft", 429, "Too Many Requests: retry after 7", retry_after=7)
    stream.push(" there")
    await clock.advance(1.0)
    refused = [c for c in session.calls if not c.ok]
    assert len(refused) == 1
    window_end = refused[0].at + 7
    for i in range(60):  # tokens keep flowing during the window
        stream.push(f" w{i}")
        await clock.advance(0.1)
    await clock.advance(window_end - clock.now())
    after = [c for c in session.calls if c.at > refused[0].at]
    assert after and after[0].at == pytest.approx(window_end)
    # The first frame after the window carries all the text so far: nothing stale was queued.
    assert after[0].params["text"] == stream.render.pages()[-1].text
    assert len([c for c in after if c.at < window_end + 1]) == 1
    await stream.finish()
    await bot.session.close()


# -- finals: priority, order, never dropped -------------------------------------------------

async def test_a_final_overtakes_an_interim_waiting_for_the_call_in_flight(
    sched: OutboundScheduler, api: Api, clock: FakeClock,
) -> None:
    api.latency = 0.5
    first = spawn(sched, api, 1, "first")
    await settle()
    interim = spawn(sched, api, 1, "interim", priority=INTERIM)
    await settle()
    final = spawn(sched, api, 1, "final")
    await settle()
    with pytest.raises(FrameDropped):
        await interim  # a final is due: the frame would only be stale by the time it could go
    await clock.advance(2)
    assert await first == "first" and await final == "final"
    assert [c.label for c in api.calls] == ["first", "final"]


async def test_interims_make_way_while_finals_wait(
    sched: OutboundScheduler, api: Api, clock: FakeClock,
) -> None:
    finals = [spawn(sched, api, -1, f"final{i}", group=True) for i in range(6)]
    await settle()
    # The bucket (burst 3) is spent; three finals wait. An interim frame would jump the queue.
    with pytest.raises(FrameDropped):
        await sched.call(-1, api(-1, "frame"), priority=INTERIM, group=True)
    await clock.advance(10)
    await asyncio.gather(*finals)
    assert [c.label for c in api.calls] == [f"final{i}" for i in range(6)]  # in order
    starts = [c.start - api.calls[0].start for c in api.calls]
    assert starts == pytest.approx([0, 0, 0, 1, 2, 3])


async def test_finals_take_the_slot_interims_leave_free(
    sched: OutboundScheduler, api: Api, clock: FakeClock,
) -> None:
    sent = 0
    for _ in range(600):  # a frame offered every 0.1 s for a minute in a group
        try:
            await sched.call(-1, api(-1, "frame"), priority=INTERIM, group=True)
            sent += 1
        except FrameDropped:
            pass
        await clock.advance(0.1)
    assert max_in_window([c.start for c in api.calls], 60.0) <= 19
    assert sent >= 17  # 2 + 0.3/s: the limit's pace, evenly
    at = clock.now()
    await sched.call(-1, api(-1, "final"), group=True)
    assert api.calls[-1].label == "final" and api.calls[-1].start == at  # no wait at all


# -- 429: the window is respected exactly; it holds only its own chat ----------------------

async def test_retry_after_pauses_the_chat_for_exactly_the_window(
    sched: OutboundScheduler, api: Api, clock: FakeClock,
) -> None:
    api.fail[1] = [5]
    t0 = clock.now()
    final = spawn(sched, api, 1, "final")
    await settle()
    assert [c.ok for c in api.to(1)] == [False]
    assert await sched.call(2, api(2, "other")) == "other"  # other chats carry on
    for _ in range(9):
        await clock.advance(0.5)
        with pytest.raises(FrameDropped) as dropped:  # interim frames are dropped meanwhile
            await sched.call(1, api(1, "frame"), priority=INTERIM)
        assert dropped.value.retry_in == pytest.approx(t0 + 5 - clock.now())
    await clock.advance(t0 + 5 - clock.now())
    assert await final == "final"  # the final after the window, not dropped
    calls = api.to(1)
    assert [c.ok for c in calls] == [False, True]
    assert calls[1].start == pytest.approx(t0 + 5)  # no call inside the window, none later
    assert sched.retry_after_count == 1


async def test_an_interim_that_meets_a_429_is_dropped_and_pauses_its_chat(
    sched: OutboundScheduler, api: Api, clock: FakeClock,
) -> None:
    api.fail[1] = [3]
    with pytest.raises(FrameDropped) as dropped:
        await sched.call(1, api(1, "frame", DRAFT), kind=DRAFT, priority=INTERIM)
    assert dropped.value.retry_in == 3
    assert sched.paused_for(1) == pytest.approx(3)
    assert sched.paused_for(2) == 0


async def test_a_long_retry_after_blocks_neither_other_chats_nor_shutdown(
    sched: OutboundScheduler, api: Api, clock: FakeClock,
) -> None:
    api.fail[1] = [3600]
    stuck = spawn(sched, api, 1, "final")
    await settle()
    assert await sched.call(2, api(2, "x")) == "x"
    stuck.cancel()  # shutdown cancels what waits; nothing sleeps an hour holding it
    await settle()
    assert stuck.cancelled()
    assert sched.paused_for(1) > 3500  # the window itself still holds for chat 1


async def test_429s_from_several_chats_pause_the_whole_bot(
    sched: OutboundScheduler, api: Api, clock: FakeClock,
) -> None:
    for chat in (1, 2, 3):
        api.fail[chat] = [4]
    tasks = [spawn(sched, api, chat, "final") for chat in (1, 2, 3)]
    await settle()
    assert sched.global_floods == 1
    with pytest.raises(FrameDropped):
        await sched.call(4, api(4, "frame", DRAFT), kind=DRAFT, priority=INTERIM)
    late = spawn(sched, api, 4, "final")
    await clock.advance(3.9)
    assert not api.to(4)
    await clock.advance(0.2)
    await asyncio.gather(late, *tasks)
    assert all(c.start >= 1000 + 4 for c in api.calls if c.ok)


async def test_one_chat_flooding_is_not_a_global_flood(
    sched: OutboundScheduler, api: Api, clock: FakeClock,
) -> None:
    api.fail[1] = [4, 4]
    task = spawn(sched, api, 1)
    await settle()
    assert await sched.call(2, api(2, "x")) == "x"
    assert sched.global_floods == 0
    task.cancel()


# -- the budgets themselves ---------------------------------------------------------------

async def test_the_global_budget_across_many_chats(
    sched: OutboundScheduler, api: Api, clock: FakeClock,
) -> None:
    api.latency = 0.02
    tasks = [spawn(sched, api, chat, f"c{chat}") for chat in range(1, 101)]
    await settle()
    with pytest.raises(FrameDropped):  # finals are waiting for the bot's budget
        await sched.call(500, api(500, "frame"), priority=INTERIM)
    await clock.advance(5)
    assert all(t.done() for t in tasks)
    assert len(api.calls) == 100
    assert [c.chat_id for c in api.calls] == list(range(1, 101))  # first come, first served
    assert max_in_window([c.start for c in api.calls], 1.0) <= 30
    assert max_in_window([c.end for c in api.calls], 1.0) <= 30
    # ... and as fast as that allows: 30 per second plus the round trip.
    assert api.calls[-1].start - api.calls[0].start < 100 / 30 + 4 * 0.02 + 0.1


async def test_frames_refused_by_the_global_budget_come_back_one_by_one(
    sched: OutboundScheduler, api: Api, clock: FakeClock,
) -> None:
    retries = {}
    for chat in range(1, 61):  # 60 chats want an edit at the same instant
        try:
            await sched.call(chat, api(chat, "frame"), priority=INTERIM)
        except FrameDropped as exc:
            retries[chat] = exc.retry_in
    assert len(api.calls) == 30 and len(retries) == 30
    # Successive slots at the bot's rate, not all at once when the window frees up.
    assert [retries[c] for c in sorted(retries)] == pytest.approx([1 + i / 30 for i in range(30)])
    start = clock.now()
    for chat in sorted(retries):
        await clock.advance(start + retries[chat] - clock.now())
        await sched.call(chat, api(chat, "again"), priority=INTERIM)  # and each gets its slot
    assert max_in_window([c.start for c in api.calls], 1.0) == 30


async def test_a_first_text_goes_ahead_of_other_chats_frames_for_the_bots_budget(
    sched: OutboundScheduler, api: Api, clock: FakeClock,
) -> None:
    for chat in range(1, 31):  # the bot's 30 messages of this second
        await sched.call(chat, api(chat, "frame"), priority=INTERIM)
    retries = {}
    for chat in range(31, 41):  # ten answers already showing want their next frame
        with pytest.raises(FrameDropped) as refused:
            await sched.call(chat, api(chat, "next"), priority=INTERIM)
        retries[chat] = refused.value.retry_in
    # Then an answer that shows nothing yet: it is promised the first slot that frees up.
    with pytest.raises(FrameDropped) as refused:
        await sched.call(99, api(99, "first"), priority=INTERIM, shed=False)
    start = clock.now()
    due = {chat: start + retry for chat, retry in retries.items()}
    due[99] = start + refused.value.retry_in
    assert due[99] - start == pytest.approx(1.0)
    assert min(due.values()) == due[99]  # a slot another chat was told of too
    while due:  # each comes back when it was told to, and again if refused
        chat = min(due, key=lambda c: (due[c], c != 99))  # a tie: the other chat asks first
        await clock.advance(max(0.0, due.pop(chat) - clock.now()))
        label = "first" if chat == 99 else "next"
        try:
            await sched.call(chat, api(chat, label), priority=INTERIM, shed=chat != 99)
        except FrameDropped as exc:
            due[chat] = clock.now() + exc.retry_in
    assert [c.label for c in api.calls[30:]] == ["first"] + ["next"] * 10
    assert api.calls[30].start - start == pytest.approx(1.0)  # the first slot, though asked for
    assert max_in_window([c.start for c in api.calls], 1.0) == 30


async def test_first_texts_get_the_slots_the_window_frees_not_one_per_thirtieth_of_a_second(
    sched: OutboundScheduler, api: Api, clock: FakeClock,
) -> None:
    for chat in range(1, 31):  # 30 groups' first texts, all at once
        await sched.call(chat, api(chat, "first"), priority=INTERIM, shed=False, group=True)
    start, due = clock.now(), {}
    for chat in range(31, 51):  # 20 more groups: the window frees 30 slots in one second
        with pytest.raises(FrameDropped) as refused:
            await sched.call(chat, api(chat, "first"), priority=INTERIM, shed=False, group=True)
        due[chat] = refused.value.retry_in
    assert list(due.values()) == pytest.approx([1.0] * 20)  # not 1.0, 1.033, ... 1.633
    await clock.advance(1.0)
    for chat in due:
        await sched.call(chat, api(chat, "first"), priority=INTERIM, shed=False, group=True)
    assert [c.start - start for c in api.calls[30:]] == pytest.approx([1.0] * 20)
    assert max_in_window([c.start for c in api.calls], 1.0) == 30


async def test_a_first_text_that_never_comes_back_frees_its_slot(
    sched: OutboundScheduler, api: Api, clock: FakeClock,
) -> None:
    for chat in range(1, 31):
        await sched.call(chat, api(chat, "frame"), priority=INTERIM)
    with pytest.raises(FrameDropped):  # promised a slot; then its answer is stopped
        await sched.call(99, api(99, "first"), priority=INTERIM, shed=False)
    await clock.advance(1.0)
    with pytest.raises(FrameDropped):  # the slot is kept for it a while
        await sched.call(31, api(31, "next"), priority=INTERIM)
    await clock.advance(STALE_FIRST + 0.1)
    assert await sched.call(31, api(31, "next"), priority=INTERIM) == "next"


async def test_drafts_do_not_spend_the_global_budget(
    sched: OutboundScheduler, api: Api, clock: FakeClock,
) -> None:
    results = await asyncio.gather(*(
        sched.call(chat, api(chat, "d", DRAFT), kind=DRAFT, priority=INTERIM)
        for chat in range(1, 201)))
    assert len(results) == 200 and all(c.start == clock.now() for c in api.calls)


async def test_group_twenty_per_minute(
    sched: OutboundScheduler, api: Api, clock: FakeClock,
) -> None:
    tasks = [spawn(sched, api, -7, f"m{i}", group=True) for i in range(45)]
    await clock.advance(150)
    await asyncio.gather(*tasks)
    starts = [c.start - api.calls[0].start for c in api.calls]
    assert max_in_window(starts, 60.0) == 20
    assert max_in_window(starts, 1.0) <= 3
    assert starts[:5] == pytest.approx([0, 0, 0, 1, 2])  # burst of 3, then one a second
    assert starts[20] == pytest.approx(60) and starts[40] == pytest.approx(120)  # no slower


async def test_draft_windows(sched: OutboundScheduler, api: Api, clock: FakeClock) -> None:
    tasks = [spawn(sched, api, 9, f"a{i}", kind=DRAFT) for i in range(90)]
    await clock.advance(70)
    await asyncio.gather(*tasks)
    starts = [c.start for c in api.calls]
    assert max_in_window(starts, 5.0) == 20
    assert max_in_window(starts, 30.0) == 40
    assert starts[-1] - starts[0] == pytest.approx(60, abs=0.5)


async def test_interim_drafts_are_paced_evenly_not_in_bursts_and_pauses(
    sched: OutboundScheduler, api: Api, clock: FakeClock,
) -> None:
    for _ in range(1200):  # a frame offered every 50 ms for a minute
        with contextlib.suppress(FrameDropped):
            await sched.call(9, api(9, "f", DRAFT), kind=DRAFT, priority=INTERIM)
        await clock.advance(0.05)
    starts = [c.start for c in api.calls]
    assert max_in_window(starts, 30.0) <= 40 and max_in_window(starts, 5.0) <= 20
    gaps = [b - a for a, b in itertools.pairwise(starts[2:])]
    assert max(gaps) < 0.9  # never a pause: ~1.3 frames a second throughout
    assert len(starts) >= 2 + 59 / 0.8  # 1.3 a second, on the 50 ms grid of offers


async def test_a_busy_loop_spaces_frames_by_its_share_now_not_when_the_last_frame_went(
    clock: FakeClock, api: Api,
) -> None:
    load = LoopLoad(clock)
    sched = OutboundScheduler(Limits(), clock, load)
    spacing = 1 / 1.3  # the drafts' pace (test above)

    async def offer(label: str) -> float | None:
        """None if the frame went, else when to try again."""
        try:
            await sched.call(9, api(9, label, DRAFT), kind=DRAFT, priority=INTERIM)
        except FrameDropped as dropped:
            return dropped.retry_in
        return None

    load.share = 0.2  # the loop is badly behind
    assert await offer("first") is None
    await clock.advance(spacing)
    retry = await offer("too soon")  # a fifth of the pace: next one 5 spacings later...
    assert retry == pytest.approx(spacing)  # ...but asked again after one, in case it calms
    load.share = 1.0  # it did: the burst is not given back, the plain pace is
    await clock.advance(0.01)
    assert await offer("calm again") is None
    assert [c.label for c in api.calls] == ["first", "calm again"]
    load.share = 0.5
    await clock.advance(spacing)
    assert await offer("half pace") is not None
    await clock.advance(spacing)
    assert await offer("two spacings on") is None
    # A frame that must not wait (an answer's first text) ignores the share.
    assert await sched.call(8, api(8, "first text", DRAFT), kind=DRAFT, priority=INTERIM,
                            shed=False) == "first text"


async def test_a_frame_that_went_late_does_not_push_the_next_one_back(
    clock: FakeClock, api: Api,
) -> None:
    """At half the pace frames are two spacings apart. One that went 0.3 spacings late (its
    pump woke late) leaves the next due two spacings after the first, not after it."""
    load = LoopLoad(clock)
    load.share = 0.5
    sched = OutboundScheduler(Limits(), clock, load)
    spacing = 1 / 1.3

    async def offer() -> float | None:
        try:
            await sched.call(9, api(9, "f", DRAFT), kind=DRAFT, priority=INTERIM)
        except FrameDropped as dropped:
            return dropped.retry_in
        return None

    assert await offer() is None  # at 0
    await clock.advance(2.3 * spacing)
    assert await offer() is None  # 0.3 late
    await clock.advance(1.6 * spacing)
    assert await offer() is not None  # 3.9 spacings: not yet
    await clock.advance(0.1 * spacing)
    assert await offer() is None  # at 4 spacings: on the first frame's grid again
    assert len(api.calls) == 3


async def test_an_answer_owed_frames_by_a_busy_loop_gets_them_first(
    clock: FakeClock, api: Api,
) -> None:
    """Counted from the answer's first text, frames the loop granted but the answer did not
    send (no new text came, they went late) are sent as soon as the drafts' own pace allows,
    up to two owed; the next answer's first text starts the count again."""
    load = LoopLoad(clock)
    load.share = 0.5
    sched = OutboundScheduler(Limits(), clock, load)
    spacing = 1 / 1.3

    async def offer(shed: bool = True) -> bool:
        try:
            await sched.call(9, api(9, "f", DRAFT), kind=DRAFT, priority=INTERIM, shed=shed)
        except FrameDropped:
            return False
        return True

    assert await offer(shed=False)  # the first text, at 0
    # Five frames' worth granted, none asked for (offers a hundredth of a spacing after each
    # instant a frame could come due, so no float rounding decides one).
    await clock.advance(10.01 * spacing)
    sent = []
    for _ in range(10):  # offered every spacing
        sent.append(await offer())
        await clock.advance(spacing)
    # Owed two (the rest of the quiet spell is not paid out), the answer sends at the drafts'
    # own pace until it is back on the grid of its first text (each frame it sends meanwhile
    # earns half of one more), then at the loop's share: every other spacing.
    assert sent == [True] * 7 + [False, True, False]
    # A new answer: its first text starts the count again, nothing is owed to it.
    assert await offer(shed=False)
    await clock.advance(spacing)
    assert not await offer()
    await clock.advance(spacing)
    assert await offer()


async def test_a_chat_that_asks_in_the_loops_worst_moments_still_gets_the_average_share(
    clock: FakeClock, api: Api,
) -> None:
    """The share swings: 0.2 for 0.4 s, 0.6 for 0.4 s, on average 0.4. A chat that offers its
    frames only in the dips is credited with what the loop granted over its whole wait, so it
    gets 0.4 of the drafts' pace like any other, not a fifth of it."""
    load = LoopLoad(clock)
    sched = OutboundScheduler(Limits(), clock, load)
    sent = 0
    for step in range(60 * 20):  # 60 s in 50 ms steps
        dip = (step // 8) % 2 == 0
        load.share = 0.2 if dip else 0.6
        if dip:
            try:
                await sched.call(9, api(9, "f", DRAFT), kind=DRAFT, priority=INTERIM)
                sent += 1
            except FrameDropped:
                pass
        await clock.advance(0.05)
    fair = 0.4 * 1.3 * 60  # the average share of the drafts' pace, for 60 s
    # A frame that comes due in a peak waits for the next dip: a little under the fair count.
    # Judged by the share at the instant of asking, the chat got a fifth of the pace (14).
    assert 0.8 * fair <= sent <= fair + 2


async def test_calls_count_until_their_answer_is_back(
    sched: OutboundScheduler, api: Api, clock: FakeClock,
) -> None:
    """However Telegram places a call between its start and end, it is within the limits."""
    rng = random.Random(4)
    api.latency = lambda: rng.uniform(0.0, 0.6)
    chats = [1, 2, -3, -4]

    async def offer(chat: int) -> None:
        for i in range(150):
            kind = rng.choice([MESSAGE, DRAFT]) if chat > 0 else MESSAGE
            priority = FINAL if i % 10 == 9 else INTERIM
            with contextlib.suppress(FrameDropped):
                await sched.call(chat, api(chat, f"{i}", kind), kind=kind, priority=priority,
                                 group=chat < 0)
            await clock.sleep(rng.uniform(0.05, 0.4))

    runs = asyncio.gather(*(offer(c) for c in chats))
    while not runs.done():
        await clock.advance(1)
    await runs
    assert len(api.calls) > 250
    for seed in range(20):
        assert telegram_would_refuse(api.calls, seed) == 0
    for chat in chats:  # one call in flight per chat
        mine = api.to(chat)
        assert all(b.start >= a.end for a, b in itertools.pairwise(mine))


async def test_frames_leave_connections_to_the_calls_that_should_not_wait(
    clock: FakeClock, api: Api,
) -> None:
    """A call finding every pooled connection busy queues in aiohttp behind the others, so
    frames hold only part of them: first texts and finals find one free, and frames beyond
    their part wait for one of it in arrival order."""
    sched = OutboundScheduler(Limits(), clock, connections=10)  # frames: 8, 2 kept back
    api.latency = 1.0  # every call takes a second
    frames = [spawn(sched, api, chat, f"frame {chat}", kind=DRAFT, priority=INTERIM)
              for chat in range(1, 9)]
    later = [spawn(sched, api, chat, f"frame {chat}", kind=DRAFT, priority=INTERIM)
             for chat in (9, 12, 13)]
    await settle()
    first_text = asyncio.create_task(sched.call(
        10, api(10, "first text", DRAFT), kind=DRAFT, priority=INTERIM, shed=False))
    final = spawn(sched, api, 11, "final")
    await clock.advance(1.0)
    assert all(t.done() for t in (*frames, first_text, final))
    assert not any(t.done() for t in later)  # they waited for the first eight
    await asyncio.gather(*frames, first_text, final)
    await clock.advance(1.0)
    await asyncio.gather(*later)
    started = {c.label: c.start for c in api.calls}
    assert [started[f"frame {c}"] for c in range(1, 9)] == [1000.0] * 8
    assert started["first text"] == started["final"] == 1000.0  # at once, on the reserve
    assert [started[f"frame {c}"] for c in (9, 12, 13)] == [1001.0] * 3
    assert [c.label for c in api.calls][-3:] == ["frame 9", "frame 12", "frame 13"]


# -- memory --------------------------------------------------------------------------------

async def test_idle_chats_are_forgotten(
    sched: OutboundScheduler, api: Api, clock: FakeClock,
) -> None:
    for n in range(1, 3001):
        chat = n if n % 2 else -n
        await sched.call(chat, api(chat, "", DRAFT), kind=DRAFT, priority=INTERIM,
                         group=chat < 0)
    api.fail[7001] = [300]
    paused = spawn(sched, api, 7001)
    await settle()
    assert sched.chat_count == 3001
    await clock.advance(max(31.0, SWEEP_EVERY))
    await sched.call(1, api(1))
    assert sched.chat_count == 2  # chat 1 again, and 7001 which still waits out its window
    paused.cancel()


# -- wiring ----------------------------------------------------------------------------------

async def test_handler_replies_go_through_the_budget_too(clock: FakeClock) -> None:
    session = RecordingSession(clock.now)
    bot = Bot(TOKEN, session=session)
    sched = OutboundScheduler(Limits(), clock)
    session.middleware(BudgetMiddleware(sched))
    session.fail("sendMessage", 429, "Too Many Requests: retry after 3", retry_after=3)
    reply = asyncio.create_task(bot.send_message(chat_id=11, text="busy"))  # as message.answer
    await settle()
    await bot.get_me()  # not aimed at a chat: not held back
    await clock.advance(2.9)
    assert [c.ok for c in session.of("sendMessage")] == []
    await clock.advance(0.2)
    assert (await reply).text == "busy"
    sends = [c for c in session.calls if c.method == "sendMessage"]
    assert sends[1].at - sends[0].at == pytest.approx(3)
    # A call the scheduler already granted is not scheduled a second time (no deadlock).
    sent = await sched.call(11, lambda: bot.send_message(chat_id=11, text="frame"))
    assert sent.text == "frame"
    await bot.session.close()


def test_limits_mirror_the_settings() -> None:
    assert {f"limit_{f.name}" for f in fields(Limits)} == set(LimitSettings.model_fields)
    defaults = LimitSettings()
    assert all(getattr(defaults, f"limit_{f.name}") == f.default for f in fields(Limits))
