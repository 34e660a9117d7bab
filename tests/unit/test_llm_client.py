"""LLMClient against a respx-mocked endpoint, through a real httpx.AsyncClient.

Response bodies are fed by byte streams we control, so the tests can split them anywhere,
stall them, and see whether the client closed them.
"""

from __future__ import annotations

import asyncio
import itertools
import json
from collections.abc import AsyncIterator, Iterator
from typing import Any

import httpx
import pytest
import respx
from hypothesis import given, settings
from hypothesis import strategies as st
from structlog.testing import capture_logs

from bot.llm import (
    ChatRequest,
    Finish,
    LLMClient,
    LLMConnectionError,
    LLMError,
    LLMEvent,
    LLMStatusError,
    LLMStreamError,
    LLMStreamingUnsupported,
    LLMTimeoutError,
    ReasoningDelta,
    TextDelta,
    Usage,
)

BASE = "https://llm.test/v1"
KEY = "sk-test-secret-123"
REQUEST = ChatRequest(messages=[{"role": "user", "content": "hi"}], model="m1")
SSE = {"content-type": "text/event-stream; charset=utf-8"}
WAIT = 2.0  # seconds; only a bound for a broken test, never a pace


class Body(httpx.AsyncByteStream):
    """A response body sent as the given pieces; records whether httpx closed it."""

    def __init__(self, pieces: list[bytes], *, fail: Exception | None = None) -> None:
        self.pieces = pieces
        self.fail = fail
        self.closed = asyncio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece
        if self.fail is not None:
            raise self.fail

    async def aclose(self) -> None:
        self.closed.set()


class StalledBody(Body):
    """Sends its pieces, then waits forever, as a provider does between tokens."""

    def __init__(self, pieces: list[bytes]) -> None:
        super().__init__(pieces)
        self.stalled = asyncio.Event()

    async def __aiter__(self) -> AsyncIterator[bytes]:
        for piece in self.pieces:
            yield piece
        self.stalled.set()
        await asyncio.Event().wait()
        yield b""  # pragma: no cover


def chunk(content: str | None = None, finish: str | None = None, **delta: Any) -> dict[str, Any]:
    if content is not None:
        delta["content"] = content
    return {
        "id": "c1",
        "object": "chat.completion.chunk",
        "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
    }


def sse(*chunks: dict[str, Any] | str, done: bool = True) -> bytes:
    lines = [f"data: {c if isinstance(c, str) else json.dumps(c)}\n\n" for c in chunks]
    return ("".join(lines) + ("data: [DONE]\n\n" if done else "")).encode()


USAGE_CHUNK = {
    "choices": [],
    "usage": {"prompt_tokens": 3, "completion_tokens": 2, "total_tokens": 5},
}
NORMAL = sse(
    chunk("", role="assistant"), chunk("Hel"), chunk("lo"), chunk(finish="stop"), USAGE_CHUNK
)
NORMAL_EVENTS: list[LLMEvent] = [
    TextDelta("Hello"),  # "Hel" and "lo" arrived in one read: one delta
    Finish("stop"),
    Usage(prompt_tokens=3, completion_tokens=2, total_tokens=5),
]


@pytest.fixture
def mock() -> Iterator[respx.MockRouter]:
    with respx.mock(base_url=BASE, assert_all_called=False) as router:
        yield router


@pytest.fixture
async def client() -> AsyncIterator[LLMClient]:
    async with httpx.AsyncClient() as http:
        yield LLMClient(http, BASE, KEY)


def reply(body: Body, headers: dict[str, str] | None = None, status: int = 200) -> httpx.Response:
    return httpx.Response(status, headers=SSE if headers is None else headers, stream=body)


def merged(events: list[LLMEvent]) -> list[LLMEvent]:
    """Adjacent deltas of one kind joined: what a stream means, however its reads fell."""
    out: list[LLMEvent] = []
    for event in events:
        last = out[-1] if out else None
        if isinstance(event, TextDelta) and isinstance(last, TextDelta):
            out[-1] = TextDelta(last.text + event.text)
        elif isinstance(event, ReasoningDelta) and isinstance(last, ReasoningDelta):
            out[-1] = ReasoningDelta(last.text + event.text)
        else:
            out.append(event)
    return out


async def collect(client: LLMClient, request: ChatRequest = REQUEST) -> list[LLMEvent]:
    async with client.stream(request) as events:
        return [event async for event in events]


# --- the happy path -------------------------------------------------------------------------


async def test_normal_stream_yields_deltas_then_finish_then_usage(
    mock: respx.MockRouter, client: LLMClient
) -> None:
    body = Body([NORMAL])
    route = mock.post("/chat/completions").mock(return_value=reply(body))

    assert await collect(client) == NORMAL_EVENTS

    sent = route.calls.last.request
    assert json.loads(sent.content) == {
        "model": "m1",
        "messages": [{"role": "user", "content": "hi"}],
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.headers["accept"] == "text/event-stream"
    assert sent.extensions["timeout"] == {
        "connect": 10.0,
        "read": 60.0,
        "write": 10.0,
        "pool": 10.0,
    }
    assert body.closed.is_set()


async def test_without_key_no_auth_header_and_optional_fields_sent_when_set(
    mock: respx.MockRouter,
) -> None:
    route = mock.post("/chat/completions").mock(return_value=reply(Body([NORMAL])))
    request = ChatRequest(messages=[], model="m2", temperature=0.0, max_tokens=50)
    async with httpx.AsyncClient() as http:
        await collect(LLMClient(http, BASE + "/", None, idle_timeout=5, connect_timeout=1), request)

    sent = route.calls.last.request
    assert "authorization" not in sent.headers
    body = json.loads(sent.content)
    assert body["temperature"] == 0.0
    assert body["max_tokens"] == 50
    assert sent.extensions["timeout"]["read"] == 5


async def test_reasoning_fields_become_reasoning_deltas(
    mock: respx.MockRouter, client: LLMClient
) -> None:
    body = sse(
        chunk(reasoning_content="think "),
        chunk(reasoning="more"),
        # Servers that send both carry the same text twice: one event, not two.
        chunk(reasoning_content="once", reasoning="once"),
        chunk("answer"),
        chunk(finish="stop"),
    )
    mock.post("/chat/completions").mock(return_value=reply(Body([body])))

    assert await collect(client) == [
        ReasoningDelta("think moreonce"),
        TextDelta("answer"),
        Finish("stop"),
    ]


async def test_ignores_comments_unknown_fields_empty_choices_and_empty_data(
    mock: respx.MockRouter, client: LLMClient
) -> None:
    odd = chunk("a")
    odd["system_fingerprint"] = "fp"
    odd["choices"][0]["logprobs"] = None
    odd["choices"][0]["delta"]["tool_calls"] = []
    body = (
        b": OPENROUTER PROCESSING\n\n"
        + sse(odd, {"choices": []}, {"choices": [], "usage": None}, done=False)
        + b"data:\n\n: keep-alive\n\nevent: ping\ndata: \n\nretry: 100\n\n"
        + sse(chunk(finish="length"), USAGE_CHUNK)
    )
    mock.post("/chat/completions").mock(return_value=reply(Body([body])))

    assert await collect(client) == [TextDelta("a"), Finish("length"), NORMAL_EVENTS[-1]]


async def test_malformed_json_chunk_is_logged_and_skipped(
    mock: respx.MockRouter, client: LLMClient
) -> None:
    body = sse(chunk("a"), '{"choices": [ broken ' + KEY, "42", chunk("b"))
    mock.post("/chat/completions").mock(return_value=reply(Body([body])))

    with capture_logs() as logs:
        assert await collect(client) == [TextDelta("ab")]

    warnings = [entry for entry in logs if entry["event"] == "llm.chunk_malformed"]
    assert len(warnings) == 2
    assert all(entry["log_level"] == "warning" for entry in warnings)
    assert KEY not in repr(logs)


async def test_stops_at_done_without_reading_further(
    mock: respx.MockRouter, client: LLMClient
) -> None:
    body = sse(chunk("a")) + sse(chunk("after done"))
    mock.post("/chat/completions").mock(return_value=reply(Body([body])))

    assert await collect(client) == [TextDelta("a")]


# --- bytes split anywhere --------------------------------------------------------------------

# CRLF, CR-only and LF line ends, multi-byte characters, a data field split over lines, a
# comment, a field without the space after the colon, and fields we ignore.
AWKWARD = (
    b": hello\r\n\r\n"
    + 'data: {"choices":[{"delta":{"content":"h\u00e9llo \U0001f30d"}}]}\r\n\r\n'.encode()
    + b'data:{"choices":[{"delta":\rdata: {"content":" \xd0\xbc\xd0\xb8\xd1\x80"}}]}\r\r'
    + b'id: 7\nevent: message\ndata: {"choices":[{"delta":{"reasoning":"\xe2\x80\xa6"}}]}\n\n'
    + b'data: {"choices":[{"delta":{},"finish_reason":"stop"}]}\r\n\r\n'
    + b"data: [DONE]\r\n\r\n"
)
AWKWARD_EVENTS: list[LLMEvent] = [
    TextDelta("héllo 🌍 мир"),
    ReasoningDelta("…"),
    Finish("stop"),
]


def split(body: bytes, cuts: list[int]) -> list[bytes]:
    edges = [0, *sorted(set(cuts)), len(body)]
    return [body[a:b] for a, b in itertools.pairwise(edges) if b > a]


async def stream_pieces(pieces: list[bytes]) -> list[LLMEvent]:
    with respx.mock(base_url=BASE) as router:
        router.post("/chat/completions").mock(return_value=reply(Body(pieces)))
        async with httpx.AsyncClient() as http:
            return await collect(LLMClient(http, BASE, KEY))


async def test_awkward_body_one_byte_at_a_time() -> None:
    pieces = [AWKWARD[i : i + 1] for i in range(len(AWKWARD))]
    assert merged(await stream_pieces(pieces)) == AWKWARD_EVENTS


@settings(max_examples=150, deadline=None)
@given(cuts=st.lists(st.integers(min_value=1, max_value=len(AWKWARD) - 1), max_size=25))
async def test_awkward_body_split_anywhere(cuts: list[int]) -> None:
    assert merged(await stream_pieces(split(AWKWARD, cuts))) == AWKWARD_EVENTS


async def test_a_data_field_split_over_two_reads_stays_one_event() -> None:
    # The second line and the blank line after it arrive together: the shape the decoder's
    # fast path takes, except that a field of the event came in the read before.
    cut = AWKWARD.index(b'\rdata: {"content"') + 2  # after "\rd": the CR ended a line
    assert merged(await stream_pieces(split(AWKWARD, [cut]))) == AWKWARD_EVENTS


async def test_split_between_cr_and_lf_makes_no_extra_event() -> None:
    cut = AWKWARD.index(b"\r\n") + 1
    assert merged(await stream_pieces(split(AWKWARD, [cut]))) == AWKWARD_EVENTS


# --- errors ---------------------------------------------------------------------------------


async def test_error_object_mid_stream_raises_after_earlier_deltas(
    mock: respx.MockRouter, client: LLMClient
) -> None:
    error = {"error": {"message": "Provider overloaded", "code": 502}}
    body = Body([sse(chunk("part"), error, chunk("never"))])
    mock.post("/chat/completions").mock(return_value=reply(body))
    seen: list[LLMEvent] = []

    with pytest.raises(LLMStreamError, match="Provider overloaded") as caught:
        async with client.stream(REQUEST) as events:
            async for event in events:
                seen.append(event)

    assert seen == [TextDelta("part")]
    assert caught.value.payload == error
    assert body.closed.is_set()


async def test_error_event_type_raises(mock: respx.MockRouter, client: LLMClient) -> None:
    body = b'event: error\ndata: {"message": "quota"}\n\n'
    mock.post("/chat/completions").mock(return_value=reply(Body([body])))

    with pytest.raises(LLMStreamError, match="quota"):
        await collect(client)


@pytest.mark.parametrize(
    ("status", "headers", "retry_after"),
    [(401, {}, None), (429, {"retry-after": "7"}, 7.0), (500, {}, None), (503, {}, None)],
)
async def test_non_2xx_raises_status_error_on_entering(
    mock: respx.MockRouter,
    client: LLMClient,
    status: int,
    headers: dict[str, str],
    retry_after: float | None,
) -> None:
    # Some providers echo the key back; it must not reach the error text or the body kept.
    payload = {"error": {"message": f"Nope for key {KEY}", "type": "x"}}
    body = Body([json.dumps(payload).encode()])
    response_headers = {"content-type": "application/json", **headers}
    mock.post("/chat/completions").mock(return_value=reply(body, response_headers, status))

    with pytest.raises(LLMStatusError) as caught:
        async with client.stream(REQUEST):
            pytest.fail("entered the stream of a failed request")  # pragma: no cover

    error = caught.value
    assert type(error) is LLMStatusError
    assert error.status_code == status
    assert error.retry_after == retry_after
    assert str(status) in str(error) and "Nope for key ***" in str(error)
    assert KEY not in str(error) and KEY not in error.body
    assert body.closed.is_set()


async def test_status_error_body_is_truncated(mock: respx.MockRouter, client: LLMClient) -> None:
    html = b"<html>" + b"x" * 100_000 + b"</html>"
    mock.post("/chat/completions").mock(
        return_value=reply(Body([html]), {"content-type": "text/html"}, 502)
    )

    with pytest.raises(LLMStatusError) as caught:
        await collect(client)

    assert caught.value.status_code == 502
    assert len(caught.value.body) == 500
    assert len(str(caught.value)) < 300


@pytest.mark.parametrize(
    "message",
    [
        "stream is not supported for this model",
        "Streaming is not available",
        "Unrecognized request argument supplied: stream_options",
    ],
)
async def test_400_mentioning_stream_is_streaming_unsupported(
    mock: respx.MockRouter, client: LLMClient, message: str
) -> None:
    payload = json.dumps({"error": {"message": message}}).encode()
    mock.post("/chat/completions").mock(
        return_value=reply(Body([payload]), {"content-type": "application/json"}, 400)
    )

    with pytest.raises(LLMStreamingUnsupported) as caught:
        await collect(client)

    assert caught.value.status_code == 400


@pytest.mark.parametrize("message", ["max_tokens too large", "upstream error"])
async def test_other_400_is_plain_status_error(
    mock: respx.MockRouter, client: LLMClient, message: str
) -> None:
    payload = json.dumps({"error": {"message": message}}).encode()
    mock.post("/chat/completions").mock(
        return_value=reply(Body([payload]), {"content-type": "application/json"}, 400)
    )

    with pytest.raises(LLMStatusError) as caught:
        await collect(client)

    assert type(caught.value) is LLMStatusError


async def test_json_answer_to_stream_request_is_streaming_unsupported(
    mock: respx.MockRouter, client: LLMClient
) -> None:
    completion = {"choices": [{"message": {"role": "assistant", "content": "hi"}}]}
    body = Body([json.dumps(completion).encode()])
    mock.post("/chat/completions").mock(
        return_value=reply(body, {"content-type": "application/json"})
    )

    with pytest.raises(LLMStreamingUnsupported) as caught:
        await collect(client)

    assert caught.value.status_code == 200
    assert caught.value.completion == ("hi", "", None)  # the answer itself: no need to ask again
    assert body.closed.is_set()


@pytest.mark.parametrize(("payload", "completion"), [
    ({"choices": [{"message": {"role": "assistant", "content": "é" * 40_000,
                               "reasoning_content": "thought"}}],
      "usage": {"prompt_tokens": 3, "completion_tokens": 9, "total_tokens": 12}},
     ("é" * 40_000, "thought", Usage(3, 9, 12))),  # 80 KB: read whole, not cut at 16 KB
    ({"object": "list", "data": []}, None),  # JSON, but no answer in it
])
async def test_json_answer_to_stream_request_carries_the_completion_if_any(
    mock: respx.MockRouter, client: LLMClient, payload: dict[str, object],
    completion: tuple[str, str, Usage | None] | None,
) -> None:
    raw = json.dumps(payload).encode()
    body = Body([raw[i:i + 5000] for i in range(0, len(raw), 5000)])
    mock.post("/chat/completions").mock(
        return_value=reply(body, {"content-type": "application/json"})
    )

    with pytest.raises(LLMStreamingUnsupported) as caught:
        await collect(client)

    assert caught.value.completion == completion


async def test_json_error_object_with_200_is_stream_error(
    mock: respx.MockRouter, client: LLMClient
) -> None:
    body = Body([b'{"error": {"message": "model not found"}}'])
    mock.post("/chat/completions").mock(
        return_value=reply(body, {"content-type": "application/json"})
    )

    with pytest.raises(LLMStreamError, match="model not found"):
        await collect(client)


async def test_wrong_content_type_is_stream_error(
    mock: respx.MockRouter, client: LLMClient
) -> None:
    body = Body([b"<html>captive portal</html>"])
    mock.post("/chat/completions").mock(return_value=reply(body, {"content-type": "text/html"}))

    with pytest.raises(LLMStreamError, match="text/html") as caught:
        await collect(client)

    assert "captive portal" in caught.value.payload
    assert body.closed.is_set()


@pytest.mark.parametrize(
    ("raised", "expected"),
    [
        (httpx.ConnectError("refused"), LLMConnectionError),
        (httpx.ConnectTimeout("slow"), LLMTimeoutError),
        (httpx.ReadTimeout("silent"), LLMTimeoutError),
        (httpx.RemoteProtocolError("cut"), LLMConnectionError),
    ],
)
async def test_transport_errors_on_connect_are_translated(
    mock: respx.MockRouter, client: LLMClient, raised: Exception, expected: type[LLMError]
) -> None:
    mock.post("/chat/completions").mock(side_effect=raised)

    with pytest.raises(expected) as caught:
        await collect(client)

    assert type(caught.value) is expected
    assert isinstance(caught.value.__cause__, httpx.TransportError)


async def test_read_timeout_mid_stream_is_timeout_error(
    mock: respx.MockRouter, client: LLMClient
) -> None:
    body = Body([sse(chunk("a"), done=False)], fail=httpx.ReadTimeout("no bytes"))
    mock.post("/chat/completions").mock(return_value=reply(body))
    seen: list[LLMEvent] = []

    with pytest.raises(LLMTimeoutError, match="60 s"):
        async with client.stream(REQUEST) as events:
            async for event in events:
                seen.append(event)

    assert seen == [TextDelta("a")]
    assert body.closed.is_set()


async def test_network_cut_mid_stream_is_connection_error(
    mock: respx.MockRouter, client: LLMClient
) -> None:
    body = Body([b'data: {"choices": [{"delta": {"con'], fail=httpx.ReadError("reset"))
    mock.post("/chat/completions").mock(return_value=reply(body))

    with pytest.raises(LLMConnectionError) as caught:
        await collect(client)

    assert type(caught.value) is LLMConnectionError
    assert body.closed.is_set()


# --- no connection left open ------------------------------------------------------------------


async def test_consumer_break_closes_on_exit_not_before(
    mock: respx.MockRouter, client: LLMClient
) -> None:
    body = Body([NORMAL])
    mock.post("/chat/completions").mock(return_value=reply(body))

    async with client.stream(REQUEST) as events:
        async for _ in events:
            break
        assert not body.closed.is_set()
    assert body.closed.is_set()

    # The stream lived exactly as long as its `async with`.
    assert [event async for event in events] == []


async def test_consumer_exception_closes_and_passes_through_untranslated(
    mock: respx.MockRouter, client: LLMClient
) -> None:
    body = Body([NORMAL])
    mock.post("/chat/completions").mock(return_value=reply(body))

    with pytest.raises(httpx.ConnectError, match="callers own"):
        async with client.stream(REQUEST) as events:
            async for _ in events:
                raise httpx.ConnectError("callers own")

    assert body.closed.is_set()


async def test_cancel_while_awaiting_next_chunk_closes_response(
    mock: respx.MockRouter, client: LLMClient
) -> None:
    body = StalledBody([sse(chunk("first"), done=False)])
    mock.post("/chat/completions").mock(return_value=reply(body))
    seen: list[LLMEvent] = []
    closed_on_exit: list[bool] = []

    async def consume() -> None:
        try:
            async with client.stream(REQUEST) as events:
                async for event in events:
                    seen.append(event)
        finally:
            # Checked right at exit: a leaked response would still be closed later by the
            # garbage collector's async-generator finalizer, which must not be relied on.
            closed_on_exit.append(body.closed.is_set())

    task = asyncio.create_task(consume())
    await asyncio.wait_for(body.stalled.wait(), WAIT)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT)

    assert seen == [TextDelta("first")]
    assert closed_on_exit == [True]


async def test_cancel_before_first_chunk_closes_response(
    mock: respx.MockRouter, client: LLMClient
) -> None:
    body = StalledBody([])
    mock.post("/chat/completions").mock(return_value=reply(body))
    entered = asyncio.Event()
    closed_on_exit: list[bool] = []

    async def consume() -> None:
        try:
            async with client.stream(REQUEST) as events:
                entered.set()
                async for _ in events:
                    pytest.fail("no event was sent")  # pragma: no cover
        finally:
            closed_on_exit.append(body.closed.is_set())

    task = asyncio.create_task(consume())
    await asyncio.wait_for(entered.wait(), WAIT)
    await asyncio.wait_for(body.stalled.wait(), WAIT)
    task.cancel()
    with pytest.raises(asyncio.CancelledError):
        await asyncio.wait_for(task, WAIT)

    assert closed_on_exit == [True]


# --- complete() and list_models() -------------------------------------------------------------


async def test_complete_returns_text_reasoning_and_usage(
    mock: respx.MockRouter, client: LLMClient
) -> None:
    answer = {
        "choices": [
            {
                "message": {"role": "assistant", "content": "Hi!", "reasoning_content": "hmm"},
                "finish_reason": "stop",
            }
        ],
        "usage": {"prompt_tokens": 1, "completion_tokens": 2, "total_tokens": 3},
    }
    route = mock.post("/chat/completions").mock(return_value=httpx.Response(200, json=answer))

    assert await client.complete(REQUEST) == ("Hi!", "hmm", Usage(1, 2, 3))

    sent = route.calls.last.request
    body = json.loads(sent.content)
    assert body["stream"] is False and "stream_options" not in body
    assert sent.headers["authorization"] == f"Bearer {KEY}"
    assert sent.extensions["timeout"]["read"] == 300.0


async def test_complete_without_usage_or_content(mock: respx.MockRouter, client: LLMClient) -> None:
    answer = {"choices": [{"message": {"role": "assistant", "content": None}}]}
    mock.post("/chat/completions").mock(return_value=httpx.Response(200, json=answer))

    assert await client.complete(REQUEST) == ("", "", None)


@pytest.mark.parametrize(
    ("response", "expected"),
    [
        (httpx.Response(429, headers={"retry-after": "2.5"}, json={}), LLMStatusError),
        (httpx.Response(200, json={"error": {"message": "bad"}}), LLMStreamError),
        (httpx.Response(200, text="not json"), LLMStreamError),
        (httpx.Response(200, json={"choices": []}), LLMStreamError),
    ],
)
async def test_complete_errors(
    mock: respx.MockRouter, client: LLMClient, response: httpx.Response, expected: type[LLMError]
) -> None:
    mock.post("/chat/completions").mock(return_value=response)

    with pytest.raises(expected) as caught:
        await client.complete(REQUEST)

    if isinstance(caught.value, LLMStatusError):
        assert caught.value.retry_after == 2.5


async def test_complete_read_timeout(mock: respx.MockRouter, client: LLMClient) -> None:
    mock.post("/chat/completions").mock(side_effect=httpx.ReadTimeout("slow"))

    with pytest.raises(LLMTimeoutError, match="300 s"):
        await client.complete(REQUEST)


async def test_list_models_sorted_unique_ids(mock: respx.MockRouter, client: LLMClient) -> None:
    models = {
        "object": "list",
        "data": [{"id": "zeta"}, {"id": "alpha", "owned_by": "x"}, {"id": "alpha"}, {"x": 1}],
    }
    route = mock.get("/models").mock(return_value=httpx.Response(200, json=models))

    assert await client.list_models() == ["alpha", "zeta"]
    assert route.calls.last.request.headers["authorization"] == f"Bearer {KEY}"


@pytest.mark.parametrize(
    ("outcome", "expected"),
    [
        (httpx.Response(401, json={"error": {"message": "bad key"}}), LLMStatusError),
        (httpx.ConnectError("refused"), LLMConnectionError),
        (httpx.Response(200, json={"data": "nope"}), LLMStreamError),
    ],
)
async def test_list_models_errors(
    mock: respx.MockRouter,
    client: LLMClient,
    outcome: httpx.Response | Exception,
    expected: type[LLMError],
) -> None:
    route = mock.get("/models")
    if isinstance(outcome, Exception):
        route.mock(side_effect=outcome)
    else:
        route.mock(return_value=outcome)

    with pytest.raises(expected):
        await client.list_models()
