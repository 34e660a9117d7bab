"""The model endpoint fails: before the first token the bot retries, then says what failed in
one sentence; after it, what was shown is kept and finalized with a note, and stored."""

from __future__ import annotations

import asyncio

import pytest

from tests.fakes.llm import Cut, Error, Pause, Raw

from .rig import USER, Rig, closed_port, rig, unaccepting_port

NO_ANSWER = "⚠️ Sorry, no answer: "


def one_sentence(text: str) -> None:
    """What the user gets instead of an answer: short, plain, no internals."""
    assert text.startswith(NO_ANSWER) and text.endswith("Please try again later.")
    assert "\n" not in text and len(text) < 160
    for internal in ("Traceback", "Error(", "http://", "127.0.0.1", "fake failure"):
        assert internal not in text


async def ask(r: Rig, text: str = "hello", count: int = 1) -> list[str]:
    r.tg.private_text(USER, text)
    return await r.finals(USER, count)


async def test_connection_refused_is_retried_then_one_sentence() -> None:
    async with rig(llm_url=f"http://127.0.0.1:{closed_port()}/v1", llm_max_retries=1) as r:
        [text] = await ask(r)
        one_sentence(text)
        assert "could not be reached" in text
        assert len(r.logs.events("llm.retry")) == 1
        assert r.logs.events("llm.failed")[0]["error_type"] == "LLMConnectionError"


async def test_dns_failure_gives_the_same_sentence() -> None:
    async with rig(llm_url="http://llm.invalid/v1", llm_max_retries=0) as r:
        [text] = await ask(r)
        one_sentence(text)
        assert "could not be reached" in text


async def test_connect_timeout() -> None:
    with unaccepting_port() as port:
        async with rig(llm_url=f"http://127.0.0.1:{port}/v1", llm_max_retries=0,
                       llm_connect_timeout=0.3) as r:
            [text] = await ask(r)
            one_sentence(text)
            assert r.logs.events("llm.failed")[0]["error_type"] == "LLMTimeoutError"


async def test_no_first_token_within_idle_timeout_is_retried_then_one_sentence() -> None:
    async with rig(llm_max_retries=1, llm_idle_timeout=0.5) as r:
        r.llm.stall_after(0, count=2)  # headers and the role chunk, then nothing
        [text] = await ask(r)
        one_sentence(text)
        assert "stopped responding" in text
        assert len(r.llm.arrivals) == 2
        assert r.llm.disconnects == 2  # each stalled connection was closed by the bot


async def test_5xx_before_first_token_retried_with_backoff_then_one_sentence() -> None:
    async with rig(llm_max_retries=2) as r:
        r.llm.fail_next(500, count=3)
        [text] = await ask(r)
        one_sentence(text)
        assert "HTTP 500" in text
        assert len(r.llm.arrivals) == 3  # 1 + LLM_MAX_RETRIES
        first, second = r.llm.gaps()
        # Exponential backoff with jitter: 0.5·2^n·[0.5, 1.5) seconds.
        assert first >= 0.45 and second >= 0.95
        assert [e["attempt"] for e in r.logs.events("llm.retry")] == [1, 2]


async def test_5xx_then_success_delivers_the_answer() -> None:
    async with rig(llm_max_retries=1) as r:
        r.llm.fail_next(503)
        r.llm.reply("Recovered answer.")
        assert await ask(r) == ["Recovered answer."]
        assert len(r.llm.arrivals) == 2


async def test_429_retry_after_is_honoured() -> None:
    async with rig(llm_max_retries=1) as r:
        r.llm.fail_next(429, headers={"Retry-After": "1"})
        r.llm.reply("After the rate limit.")
        assert await ask(r) == ["After the rate limit."]
        [gap] = r.llm.gaps()
        assert gap >= 0.95
        assert r.logs.events("llm.retry")[0]["delay"] >= 1


async def test_429_with_a_long_retry_after_is_reported_at_once() -> None:
    async with rig(llm_max_retries=2) as r:
        r.llm.fail_next(429, headers={"Retry-After": "3600"})
        [text] = await ask(r)
        one_sentence(text)
        assert "rate-limiting" in text
        assert len(r.llm.arrivals) == 1  # no retry that is bound to fail again


async def test_endpoint_refusing_stream_falls_back_and_remembers() -> None:
    async with rig() as r:
        r.llm.refuse_streaming = True
        r.llm.reply("Answer without streaming.")
        assert await ask(r) == ["Answer without streaming."]
        r.llm.reply("Second, straight away.")
        assert await ask(r, "again", 2) == ["Answer without streaming.", "Second, straight away."]
        assert [b["stream"] for b in r.llm.requests] == [True, False, False]
        assert len(r.logs.events("llm.streaming_unsupported")) == 1


async def test_endpoint_ignoring_stream_is_answered_from_its_json_without_asking_twice() -> None:
    async with rig() as r:
        r.llm.ignore_streaming = True  # answers `stream: true` with the whole chat.completion
        r.llm.reply("The whole answer at once.")
        assert await ask(r) == ["The whole answer at once."]
        r.llm.reply("Second, without streaming.")
        assert await ask(r, "again", 2) == ["The whole answer at once.",
                                            "Second, without streaming."]
        assert [b["stream"] for b in r.llm.requests] == [True, False]  # each asked once
        assert r.logs.events("llm.streaming_unsupported")[0]["answered"] is True


@pytest.mark.parametrize(("fault", "reason"), [
    (Cut(), "the connection to the model endpoint was lost"),
    (Error(), "the model endpoint reported an error"),
])
async def test_failure_after_first_token_keeps_text_adds_note_and_stores_it(
    fault: Cut | Error, reason: str
) -> None:
    async with rig() as r:
        shown = asyncio.Event()
        r.llm.script(["The beginning ", "of an answer", Pause(shown), fault])
        r.tg.private_text(USER, "tell me")
        await r.drafted(USER, "The beginning of an answer")
        shown.set()
        [text] = await r.finals(USER)
        assert text == f"The beginning of an answer\n\n⚠️ Answer interrupted: {reason}."
        assert len(r.llm.arrivals) == 1  # never retried: that would repeat visible text
        await assert_partial_turn_stored(r, "The beginning of an answer")


async def test_no_data_for_idle_timeout_after_first_token() -> None:
    async with rig(llm_idle_timeout=0.5) as r:
        r.llm.stall_after(2)
        r.llm.reply("Half of it, and the rest never comes", chunk_chars=8)
        [text] = await ask(r)
        assert text.startswith("Half of it,")
        assert text.endswith("⚠️ Answer interrupted: the model endpoint stopped responding.")
        assert r.llm.disconnects == 1 and len(r.llm.arrivals) == 1
        await assert_partial_turn_stored(r, "Half of it,")


async def test_malformed_chunks_are_logged_and_skipped() -> None:
    async with rig() as r:
        r.llm.script(["Good ", Raw("data: {not json\n\n"), Raw("data: [1, 2]\n\n"), "answer."])
        assert await ask(r) == ["Good answer."]
        assert len(r.logs.events("llm.chunk_malformed")) == 2


async def test_hard_overall_timeout_per_answer() -> None:
    async with rig(llm_total_timeout=1, llm_idle_timeout=5) as r:
        r.llm.script(["Slow start", Pause(asyncio.Event())])  # trickles, then never ends
        [text] = await ask(r)
        assert text == "Slow start\n\n⚠️ Answer interrupted: it took longer than the time limit."
        await r.llm.disconnected.wait()  # the provider stops generating
        await assert_partial_turn_stored(r, "Slow start")


async def assert_partial_turn_stored(r: Rig, partial: str) -> None:
    """The next request carries the interrupted answer as the assistant turn."""
    before = len(r.tg.texts(USER))
    r.llm.reply("ok")
    await ask(r, "and then?", before + 1)
    messages = r.llm.requests[-1]["messages"]
    assert [m["role"] for m in messages[-3:]] == ["user", "assistant", "user"]
    assert messages[-2]["content"].startswith(partial)
    assert "⚠️" not in messages[-2]["content"]  # the note is for the user, not the model
