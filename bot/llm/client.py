"""An OpenAI-compatible chat client: SSE stream in, typed events out, httpx errors translated.

Decoding is two-stage, as in openai-python: httpx-sse turns bytes into events (it copes with
chunks split mid-line, mid-character or between CR and LF), then each event's JSON becomes
`LLMEvent`s (`events.events_from_chunk`). Text that arrives in one network read is handed on
as one `TextDelta` (likewise reasoning): a paced read carries many tokens (wire.py), and the
reader has no use for the boundaries between them.
"""

from __future__ import annotations

import json
from collections.abc import AsyncGenerator, AsyncIterator
from contextlib import AbstractAsyncContextManager, AsyncExitStack, aclosing, asynccontextmanager
from contextlib import AbstractContextManager as ContextManager
from dataclasses import dataclass
from typing import Any, cast

import httpx
import orjson
import structlog
from httpx_sse import EventSource, aconnect_sse
from httpx_sse._decoders import SSEDecoder, SSELineDecoder  # not re-exported; pinned < 1

from bot.llm import errors
from bot.llm.events import (
    LLMEvent,
    ReasoningDelta,
    TextDelta,
    Usage,
    events_from_chunk,
    reasoning_text,
    usage_from,
)
from bot.llm.wire import PACE, Pace

log = structlog.get_logger(__name__)

# The most of a whole JSON answer read where a stream was asked for (a server ignoring
# `stream`); beyond it the answer is asked for again without streaming.
COMPLETION_MAX_BYTES = 4 * 1024 * 1024


@dataclass(frozen=True)
class ChatRequest:
    messages: list[dict[str, Any]]
    model: str
    temperature: float | None = None
    max_tokens: int | None = None

    def payload(self, *, stream: bool) -> dict[str, Any]:
        # Optional fields are left out rather than sent as null: several servers reject nulls.
        body: dict[str, Any] = {"model": self.model, "messages": self.messages, "stream": stream}
        if stream:
            body["stream_options"] = {"include_usage": True}
        optional = {"temperature": self.temperature, "max_tokens": self.max_tokens}
        body.update((key, value) for key, value in optional.items() if value is not None)
        return body


class LLMClient:
    """Talks to one endpoint through a shared `httpx.AsyncClient` that the caller owns.

    `complete_timeout` bounds the silence before a non-streamed answer: the server sends
    nothing until the whole answer is ready, so the streaming idle timeout is too short.
    """

    def __init__(
        self,
        http: httpx.AsyncClient,
        base_url: str,
        api_key: str | None,
        *,
        idle_timeout: float = 60.0,
        connect_timeout: float = 10.0,
        complete_timeout: float = 300.0,
    ) -> None:
        self._http = http
        self._base_url = base_url.rstrip("/")
        self._api_key = api_key or None
        self._idle_timeout = idle_timeout
        self._connect_timeout = connect_timeout
        self._complete_timeout = complete_timeout

    def stream(
        self, request: ChatRequest, *, pace: Pace | None = None
    ) -> AbstractAsyncContextManager[AsyncIterator[LLMEvent]]:
        """The answer as events; the HTTP response is closed whenever the `async with` exits.

        `pace`, if given, is awaited before each network read of the answer (see `wire`:
        transports other than `wire.AiohttpTransport` ignore it).

        Raises `LLMStatusError` (or `LLMStreamingUnsupported`) on entering; `LLMStreamError`,
        `LLMConnectionError` or `LLMTimeoutError` on entering or while iterating.
        """
        return self._open_stream(request, pace)

    async def complete(self, request: ChatRequest) -> tuple[str, str, Usage | None]:
        """Non-streaming fallback: (answer text, reasoning text, usage)."""
        payload = await self._request_json(
            "POST", "/chat/completions", request.payload(stream=False), self._complete_timeout
        )
        completion = _completion(payload)
        if completion is None:
            raise errors.LLMStreamError(
                "The model endpoint answered without a message.", payload=payload
            )
        return completion

    async def list_models(self) -> list[str]:
        """Model ids the endpoint offers, sorted."""
        payload = await self._request_json("GET", "/models", None, self._idle_timeout)
        items = payload.get("data") if isinstance(payload, dict) else payload
        if not isinstance(items, list):
            raise errors.LLMStreamError("The model endpoint listed no models.", payload=payload)
        ids = {item.get("id") for item in items if isinstance(item, dict)}
        return sorted(i for i in ids if isinstance(i, str))

    @asynccontextmanager
    async def _open_stream(
        self, request: ChatRequest, pace: Pace | None
    ) -> AsyncIterator[AsyncIterator[LLMEvent]]:
        # An exit stack rather than nested `async with`, so that exceptions raised by the
        # caller's own body pass through untranslated while cleanup still always runs.
        stack = AsyncExitStack()
        try:
            with self._translated(self._idle_timeout):
                source = await stack.enter_async_context(
                    aconnect_sse(
                        self._http,
                        "POST",
                        f"{self._base_url}/chat/completions",
                        json=request.payload(stream=True),
                        headers=self._headers(),
                        timeout=self._timeout(self._idle_timeout),
                        extensions={PACE: pace} if pace is not None else None,
                    )
                )
                await self._check_stream_response(source.response)
            events = self._events(source)
            stack.push_async_callback(events.aclose)
            yield events
        finally:
            with self._translated(self._idle_timeout):
                await stack.aclose()

    async def _events(self, source: EventSource) -> AsyncGenerator[LLMEvent, None]:
        # httpx-sse's own decoders, driven from one generator rather than through
        # `EventSource.aiter_sse()`: that one stacks two more async generators per line and
        # per event, a third of the CPU per token once the network reads are batched (wire.py).
        sses = _Decoder()
        with self._translated(self._idle_timeout):
            async with aclosing(_line_batches(source.response)) as batches:
                async for lines in batches:
                    events, end = self._decoded(lines, sses)
                    for event in events:
                        yield event
                    if isinstance(end, Exception):
                        raise end  # after the text that came before it
                    if end:
                        return

    def _decoded(
        self, lines: list[str], sses: _Decoder
    ) -> tuple[list[LLMEvent], bool | Exception]:
        """The events of complete lines, adjacent text joined, and how the lines ended: True at
        `[DONE]`, an LLMError for an error the server sent in the stream, else False."""
        out: list[LLMEvent] = []
        run: list[str] = []  # adjacent deltas of one kind, joined when the run ends
        kind: type[TextDelta | ReasoningDelta] = TextDelta

        def end_run() -> None:
            if run:
                out.append(kind("".join(run)))
                run.clear()

        # httpx-sse's decoder sees every line but the commonest shape, one `data:` line and the
        # blank line that ends the event, taken here while the decoder holds nothing (it would
        # make an event "message" with that data): two method calls and an object less per token.
        i, count = 0, len(lines)
        while i < count:
            line = lines[i]
            if sses.clean and line[:5] == "data:" and i + 1 < count and not lines[i + 1]:
                i += 2
                name = "message"
                data = line[6:] if line[5:6] == " " else line[5:]
            else:
                i += 1
                sse = sses.decoder.decode(line)
                sses.clean = not line  # a blank line ends an event and resets the decoder
                if sse is None:
                    continue
                name, data = sse.event, sse.data
            data = data.strip()
            if data == "[DONE]":
                end_run()
                return out, True
            if not data:
                continue
            try:
                chunk = orjson.loads(data)
            except orjson.JSONDecodeError:
                chunk = None
            if name == "error" or (isinstance(chunk, dict) and chunk.get("error")):
                end_run()
                return out, errors.in_band_error(data if chunk is None else chunk, self._api_key)
            if not isinstance(chunk, dict):
                log.warning("llm.chunk_malformed", data=errors.redact(data, self._api_key)[:200])
                continue
            for event in events_from_chunk(chunk):
                if type(event) is TextDelta or type(event) is ReasoningDelta:
                    if type(event) is not kind:
                        end_run()
                        kind = type(event)
                    run.append(event.text)
                else:
                    end_run()
                    out.append(event)
        end_run()
        return out, False

    async def _check_stream_response(self, response: httpx.Response) -> None:
        content_type = response.headers.get("content-type", "").partition(";")[0].strip().lower()
        if response.is_success and content_type == "text/event-stream":
            return
        # A 2xx JSON answer may be the whole completion: read all of it (an answer is bounded
        # by max_tokens; the cap only guards memory), not just an error's first 16 KB.
        whole = response.is_success and content_type == "application/json"
        body = await errors.read_body(
            response, self._api_key, COMPLETION_MAX_BYTES if whole else errors.ERROR_BYTES)
        if not response.is_success:
            raise errors.status_error(
                response.status_code, body, response.headers.get("retry-after")
            )
        if content_type != "application/json":
            raise errors.LLMStreamError(
                f"The model endpoint answered with {content_type or 'no content type'}, "
                "not an event stream.",
                payload=body[: errors.BODY_LIMIT],
            )
        try:
            payload = json.loads(body)
        except ValueError:
            payload = None
        if isinstance(payload, dict) and payload.get("error"):
            raise errors.in_band_error(payload, self._api_key)
        raise errors.LLMStreamingUnsupported(
            "The model endpoint answered with JSON instead of an event stream.",
            status_code=response.status_code,
            body=body,
            retry_after=None,
            completion=_completion(payload),
        )

    async def _request_json(self, method: str, path: str, body: Any, read: float) -> Any:
        with self._translated(read):
            response = await self._http.request(
                method,
                f"{self._base_url}{path}",
                json=body,
                headers=self._headers(),
                timeout=self._timeout(read),
            )
        return errors.json_answer(response, self._api_key)

    def _headers(self) -> dict[str, str]:
        # A fresh dict each call: aconnect_sse adds its own headers to the one it is given.
        return {"Authorization": f"Bearer {self._api_key}"} if self._api_key else {}

    def _timeout(self, read: float) -> httpx.Timeout:
        # `read` bounds the gap between two received chunks, not the whole answer, so it is
        # what turns a stalled stream into LLMTimeoutError without capping long answers.
        connect = self._connect_timeout
        return httpx.Timeout(connect=connect, read=read, write=connect, pool=connect)

    def _translated(self, read: float) -> ContextManager[None]:
        return errors.translated(connect_timeout=self._connect_timeout, read_timeout=read)


def _completion(payload: Any) -> tuple[str, str, Usage | None] | None:
    """(answer text, reasoning text, usage) of a chat.completion object, or None."""
    choices = payload.get("choices") if isinstance(payload, dict) else None
    message = choices[0].get("message") if choices and isinstance(choices[0], dict) else None
    if not isinstance(message, dict):
        return None
    content = message.get("content")
    text = content if isinstance(content, str) else ""
    return text, reasoning_text(message), usage_from(payload.get("usage"))


class _Decoder:
    """httpx-sse's event decoder, and whether it holds a field of an unfinished event (an event
    may span two network reads)."""

    __slots__ = ("clean", "decoder")

    def __init__(self) -> None:
        self.decoder = SSEDecoder()
        self.clean = True


async def _line_batches(response: httpx.Response) -> AsyncGenerator[list[str], None]:
    """The complete lines of each network read (one read may carry many events)."""
    lines = SSELineDecoder()
    # An async generator, typed by httpx as a plain iterator: closed here, at once.
    texts = cast(AsyncGenerator[str, None], response.aiter_text())
    async with aclosing(texts):
        async for text in texts:
            yield lines.decode(text)
    yield lines.flush()
