"""The draft-then-edit manager against a recording Bot API session, with a manual clock."""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator
from dataclasses import dataclass

import pytest
from aiogram import Bot

from bot.render import MarkdownStream
from bot.transport.answer import AnswerStream, Mode, StreamOptions
from bot.transport.fallback import DraftRefusals
from bot.transport.limits import Limits
from bot.transport.load import LoopLoad
from bot.transport.manager import StreamManager
from bot.transport.outbound import Outbound
from bot.transport.scheduler import OutboundScheduler
from bot.transport.target import ChatTarget
from tests.fakes.clock import FakeClock, settle
from tests.fakes.session import RecordingSession

TOKEN = "42:" + "x" * 35
DM = ChatTarget(chat_id=100, private=True)
GROUP = ChatTarget(chat_id=-100, private=False, reply_to=7)


@dataclass
class Rig:
    clock: FakeClock
    session: RecordingSession
    manager: StreamManager
    refusals: DraftRefusals

    def open(self, target: ChatTarget, limit: int = 4096):  # type: ignore[no-untyped-def]
        return self.manager.open(target, MarkdownStream(limit=limit))


def make_rig(transport: str = "auto", load: LoopLoad | None = None,
             **opts: object) -> tuple[Rig, Bot]:
    clock = FakeClock()
    session = RecordingSession(clock.now)
    bot = Bot(TOKEN, session=session)
    scheduler = OutboundScheduler(Limits(), clock, load)
    refusals = DraftRefusals(clock, ttl=3600)
    manager = StreamManager(Outbound(bot, scheduler, clock), clock, refusals, transport,
                            StreamOptions(**opts))  # type: ignore[arg-type]
    return Rig(clock, session, manager, refusals), bot


@pytest.fixture
async def rig() -> AsyncIterator[Rig]:
    r, bot = make_rig()
    yield r
    await bot.session.close()


def busy_rig(share: float = 0.25) -> tuple[Rig, Bot]:
    """A rig whose event loop is busy: interim frames get `share` of their pace."""
    load = LoopLoad(FakeClock())
    load.share = share
    return make_rig(load=load)


async def push_words(rig: Rig, stream: AnswerStream, words: int = 100) -> None:
    """A word every 100 ms on the rig's clock."""
    for n in range(words):
        stream.push(f" w{n}")
        await rig.clock.advance(0.1)


async def test_while_the_loop_is_busy_no_placeholder_first_text_at_once_then_fewer_frames(
) -> None:
    rig, bot = busy_rig()
    stream = rig.open(DM)
    await stream.start()
    await rig.clock.advance(0.3)
    assert rig.session.of("sendMessageDraft") == []  # no "Thinking…" while the loop is busy
    stream.push("First words")
    await settle()
    assert [c.params.get("text") for c in rig.session.of("sendMessageDraft")] == ["First words"]
    await push_words(rig, stream)  # 10 s of text
    drafts = len(rig.session.of("sendMessageDraft"))
    await stream.finish()
    await bot.session.close()
    # Calm, this chat would get ~1.3 drafts a second (test_scheduler); at a quarter, ~3 in 10 s
    # after the first.
    assert 3 <= drafts <= 1 + 0.325 * 10 + 1
    assert rig.session.names()[-1] == "sendMessage"


async def test_no_frame_is_built_that_the_budget_would_refuse() -> None:
    # At 1,000 answers most offers of a frame met a chat not yet due: each was rendered, then
    # refused. The budget is asked first now, so every render is sent.
    rig, bot = busy_rig()
    stream = rig.open(DM)
    pages = stream.render.pages
    renders = 0

    def counted():  # type: ignore[no-untyped-def]
        nonlocal renders
        renders += 1
        return pages()

    stream.render.pages = counted  # type: ignore[method-assign]
    await stream.start()
    await push_words(rig, stream)  # 10 s of text
    drafts = len(rig.session.of("sendMessageDraft"))
    await stream.finish()
    await bot.session.close()
    assert drafts >= 4
    assert renders == drafts


async def test_one_late_tick_does_not_cost_the_placeholder() -> None:
    load = LoopLoad(FakeClock())
    load.observe(0.2)  # one collector pause, say
    rig, bot = make_rig(load=load)
    stream = rig.open(DM)
    await stream.start()
    await stream.finish()
    await bot.session.close()
    assert [c.params.get("text") for c in rig.session.of("sendMessageDraft")] == [""]


async def test_draft_path_grows_then_one_final_message(rig: Rig) -> None:
    stream = rig.open(DM)
    assert stream.mode is Mode.DRAFT
    await stream.start()
    stream.push("Hello")
    await settle()
    stream.push(" world")  # 6 new chars < min_chars: waits for the max interval
    await settle()
    assert [c.params.get("text") for c in rig.session.of("sendMessageDraft")] == ["", "Hello"]
    await rig.clock.advance(1.0)
    stream.push(", and more")
    await rig.clock.advance(0.6)  # the drafts' pace: 1.3 a second after the first text
    result = await stream.finish()

    drafts = rig.session.of("sendMessageDraft")
    texts = [c.params.get("text") for c in drafts]
    assert texts[0] == ""  # the "Thinking…" placeholder before the first token
    assert texts[1:] == ["Hello", "Hello world", "Hello world, and more"]
    assert len({c.params["draft_id"] for c in drafts}) == 1 and drafts[0].params["draft_id"] != 0
    sends = rig.session.of("sendMessage")
    assert [c.params["text"] for c in sends] == ["Hello world, and more"]
    assert rig.session.names()[-1] == "sendMessage"
    assert result.texts == ["Hello world, and more"]


async def test_first_text_goes_out_without_waiting(rig: Rig) -> None:
    stream = rig.open(DM)
    await stream.start()
    before = rig.clock.now()
    stream.push("Hi")
    await settle()
    first = rig.session.of("sendMessageDraft")[-1]
    assert first.params["text"] == "Hi" and first.at == before
    await stream.finish()


async def test_edit_path_in_groups_with_cursor_removed_at_end(rig: Rig) -> None:
    stream = rig.open(GROUP)
    assert stream.mode is Mode.EDIT
    await stream.start()
    await settle()
    assert rig.session.names() == ["sendChatAction"]
    stream.push("Hello")
    await settle()
    first = rig.session.of("sendMessage")[0]
    assert first.params["text"] == "Hello ▌"
    assert first.params["reply_parameters"]["message_id"] == 7
    stream.push(" there, how are you")
    await rig.clock.advance(0.3)
    stream.push(" today?")
    await rig.clock.advance(1.0)
    await stream.finish()

    edits = [c.params["text"] for c in rig.session.of("editMessageText")]
    assert edits[:-1] and all(t.endswith(" ▌") for t in edits[:-1])
    assert edits[-1] == "Hello there, how are you today?"
    assert len(rig.session.of("sendMessage")) == 1
    assert "▌" not in rig.session.texts[(-100, 1)]
    assert "reply_markup" not in rig.session.of("editMessageText")[-1].params


async def test_refused_draft_switches_to_edits_without_loss(rig: Rig) -> None:
    stream = rig.open(DM)
    await stream.start()
    stream.push("Hello")
    await settle()
    rig.session.always_fail["sendMessageDraft"] = (400, "Bad Request: method is not available",
                                                   None)
    stream.push(" there, my friend")
    await rig.clock.advance(0.8)  # the next draft is due at the drafts' pace, 1.3 a second
    assert stream.mode is Mode.EDIT
    stream.push(" — bye")
    await rig.clock.advance(1.0)
    await stream.finish()

    sends = rig.session.of("sendMessage")
    assert len(sends) == 1 and sends[0].params["text"].startswith("Hello there, my friend")
    assert rig.session.texts[(100, 1)] == "Hello there, my friend — bye"
    assert rig.refusals.draftless(100)
    assert rig.manager.mode_for(DM) is Mode.EDIT  # remembered for the next answer
    await rig.clock.advance(3601)
    assert rig.manager.mode_for(DM) is Mode.DRAFT  # ... but not forever


async def test_unchanged_text_is_not_resent_and_not_modified_is_a_no_op() -> None:
    rig, bot = make_rig(cursor="")
    stream = rig.open(GROUP)
    await stream.start()
    stream.push("Same text")
    await settle()
    await rig.clock.advance(5)
    # The final text equals the last frame: Telegram answers "not modified", which is fine.
    result = await stream.finish()
    assert [c.method for c in rig.session.calls if c.method != "sendChatAction"] == [
        "sendMessage", "editMessageText"]
    assert not rig.session.calls[-1].ok
    assert result.texts == ["Same text"]
    await bot.session.close()


async def test_throttle_by_time_and_size() -> None:
    rig, bot = make_rig(transport="edit")
    stream = rig.open(DM)
    await stream.start()
    for _ in range(200):  # 20 s of one character every 0.1 s
        stream.push("x")
        await rig.clock.advance(0.1)
    finishing = asyncio.create_task(stream.finish())
    await rig.clock.advance(2)
    await finishing
    frames = [c for c in rig.session.calls if c.method in ("sendMessage", "editMessageText")]
    gaps = [b.at - a.at for a, b in itertools.pairwise(frames)]
    assert min(gaps[:-1]) >= 0.25 - 1e-9  # never closer than the min interval
    # within the chat budget (burst 3, then 1/s) and yet growing steadily for the user
    assert 18 <= len(frames) <= 3 + 20 + 1
    await bot.session.close()


async def test_fast_tokens_get_a_frame_at_every_step_of_the_drafts_pace() -> None:
    rig, bot = make_rig(transport="auto")
    stream = rig.open(DM)
    await stream.start()
    for _ in range(160):  # 5 characters every 25 ms for four seconds
        stream.push("abcd ")
        await rig.clock.advance(0.025)
    drafts = [c.at for c in rig.session.of("sendMessageDraft")][1:]  # after "Thinking…"
    gaps = [b - a for a, b in itertools.pairwise(drafts)]
    # The first text at once, then 1.3 a second: (40 - 1) per 30 s, evenly, the burst (the
    # placeholder and the first text) paid back.
    assert len(drafts) >= 1 + 5 and all(abs(g - 1 / 1.3) < 0.03 for g in gaps)
    await stream.finish()
    await bot.session.close()


async def test_group_budget_is_twenty_per_minute(rig: Rig) -> None:
    stream = rig.open(GROUP)
    await stream.start()
    for _ in range(900):  # 90 s of steady tokens
        stream.push("y")
        await rig.clock.advance(0.1)
    finishing = asyncio.create_task(stream.finish())
    await rig.clock.advance(60)
    await finishing
    frames = [c.at for c in rig.session.calls if c.method in ("sendMessage", "editMessageText")]
    for i, start in enumerate(frames):
        assert sum(1 for t in frames[i:] if t < start + 60) <= 20
    assert rig.session.texts[(-100, 1)] == "y" * 900


async def test_finish_does_not_wait_for_an_interim_frame_queued_on_the_budget(rig: Rig) -> None:
    stream = rig.open(GROUP)
    await stream.start()
    for _ in range(40):
        stream.push("z")
        await rig.clock.advance(0.5)
    # The group window is spent; the pump waits for budget. finish() cancels that wait and
    # queues the final, which gets the next slot.
    finishing = asyncio.create_task(stream.finish())
    await rig.clock.advance(60)
    assert finishing.done()
    assert rig.session.texts[(-100, 1)] == "z" * 40


async def test_overflow_continues_in_a_new_message(rig: Rig) -> None:
    stream = rig.open(DM, limit=60)
    await stream.start()
    words = [f"word{i:02d}" for i in range(30)]
    for w in words:
        stream.push(w + " ")
        await rig.clock.advance(0.3)
    result = await stream.finish()
    assert len(result.texts) >= 3
    assert " ".join(result.texts).split() == words
    assert all(len(t) <= 60 for t in result.texts)
    draft_ids = {c.params["draft_id"] for c in rig.session.of("sendMessageDraft")}
    assert len(draft_ids) == len(result.texts)  # a new draft per message


async def test_retry_after_pauses_the_chat_and_final_still_arrives(rig: Rig) -> None:
    stream = rig.open(GROUP)
    await stream.start()
    stream.push("Hello")
    await settle()
    rig.session.fail("editMessageText", 429, "Too Many Requests: retry after 5", retry_after=5)
    stream.push(" world, this is long enough")
    await rig.clock.advance(0.3)
    failed = [c for c in rig.session.calls if not c.ok]
    assert len(failed) == 1
    window_end = failed[0].at + 5
    stream.push(" and more")
    await rig.clock.advance(2)
    finishing = asyncio.create_task(stream.finish())
    await rig.clock.advance(4)
    await finishing
    after = [c for c in rig.session.calls if c.at > failed[0].at]
    assert after and all(c.at >= window_end for c in after)
    assert rig.session.texts[(-100, 1)] == "Hello world, this is long enough and more"


async def test_off_mode_types_then_sends_once() -> None:
    rig, bot = make_rig(transport="off")
    stream = rig.open(DM)
    await stream.start()
    stream.push("All at once")
    await rig.clock.advance(10)
    await stream.finish()
    assert set(rig.session.names()) == {"sendChatAction", "sendMessage"}
    assert rig.session.names()[-1] == "sendMessage"
    await bot.session.close()


async def test_finish_while_first_send_in_flight_sends_no_duplicate(rig: Rig) -> None:
    gate = asyncio.Event()
    rig.session.hold["sendMessage"] = gate
    stream = rig.open(GROUP)
    await stream.start()
    stream.push("Hello")
    await settle()
    finishing = asyncio.create_task(stream.finish())
    await settle()
    gate.set()
    await asyncio.wait_for(finishing, 5)
    assert len(rig.session.of("sendMessage")) == 1
    assert rig.session.texts[(-100, 1)] == "Hello"


async def test_interrupted_note_is_appended(rig: Rig) -> None:
    stream = rig.open(DM)
    await stream.start()
    stream.push("Partial answer")
    await settle()
    result = await stream.finish(note="⚠️ Answer interrupted.")
    final = rig.session.of("sendMessage")[-1]
    assert final.params["text"] == "Partial answer\n\n⚠️ Answer interrupted."
    assert final.params["entities"][-1]["type"] == "italic"
    assert result.message_ids == [1]


async def test_finish_waits_for_a_draft_in_flight_so_no_draft_lands_after_the_final(
    rig: Rig,
) -> None:
    stream = rig.open(DM)
    await stream.start()
    gate = asyncio.Event()
    rig.session.hold["sendMessageDraft"] = gate
    stream.push("Hello")
    await settle()
    finishing = asyncio.create_task(stream.finish())
    await settle()
    assert not finishing.done()  # the draft call in flight is not abandoned
    gate.set()
    await asyncio.wait_for(finishing, 5)
    names = rig.session.names()
    assert names[-2:] == ["sendMessageDraft", "sendMessage"]
    assert rig.session.calls[-2].params["text"] == "Hello"


async def test_rejected_entities_go_out_plain_once_and_the_stream_continues(rig: Rig) -> None:
    stream = rig.open(DM)
    await stream.start()
    rig.session.fail("sendMessageDraft", 400,
                     "Bad Request: can't parse entities: Can't find end of the entity at byte 3")
    stream.push("Some **bold** text")
    await settle()
    await rig.clock.advance(1.0)  # the plain retry had no room left: it goes at the pace
    drafts = rig.session.calls[-2:]
    assert [c.ok for c in drafts] == [False, True]
    assert drafts[0].params["entities"] and "entities" not in drafts[1].params
    assert drafts[0].params["text"] == drafts[1].params["text"] == "Some bold text"
    assert stream.mode is Mode.DRAFT  # not mistaken for a refused draft
    stream.push(" and **more**")
    await rig.clock.advance(1.0)
    # Later frames of this answer go plain at once: one call each, not a refused one first.
    assert [c.ok for c in rig.session.calls[-1:]] == [True]
    assert rig.session.calls[-1].params["text"] == "Some bold text and more"
    assert "entities" not in rig.session.calls[-1].params
    await stream.finish()
    final = rig.session.of("sendMessage")[-1]
    assert final.params["text"] == "Some bold text and more" and final.params["entities"]
