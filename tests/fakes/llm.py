"""A fake OpenAI-compatible chat endpoint (aiohttp.web) for end-to-end tests and benchmarks.

`POST /v1/chat/completions` streams `chat.completion.chunk` frames as Server-Sent Events the way
OpenAI does (role chunk, content deltas, finish chunk, optional usage chunk, `data: [DONE]`), or
answers one `chat.completion` when `stream` is false. Replies are scripted per request:

    async with FakeLLM() as llm:
        llm.reply("Hello there")                      # split into deltas of `chunk_chars`
        gate = asyncio.Event()
        llm.script(["Hel", Reasoning("hmm"), Pause(gate), "lo", Cut()])

With nothing queued the reply echoes the last user message ("You said: ...").
A client that hangs up before the end is counted in `disconnects` and sets `disconnected`.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import json
import time
from collections import deque
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from tests.fakes.serve import LocalServer

JsonDict = dict[str, Any]


@dataclass(frozen=True)
class Text:
    """A content delta (a plain `str` in a script means the same)."""

    text: str


@dataclass(frozen=True)
class Reasoning:
    """A `reasoning_content` delta (DeepSeek/vLLM/OpenRouter style thinking text)."""

    text: str


@dataclass(frozen=True)
class Raw:
    """Written to the stream verbatim, e.g. ": keep-alive\\n\\n" or a half frame."""

    data: str


@dataclass(frozen=True)
class Pause:
    """Stop sending until the test sets the event (the connection stays open)."""

    event: asyncio.Event


@dataclass(frozen=True)
class Delay:
    """Real sleep; for benchmarks only (tests use Pause)."""

    seconds: float


@dataclass(frozen=True)
class Error:
    """An `{"error": ...}` frame, after which the stream ends without [DONE]."""

    error: JsonDict = field(
        default_factory=lambda: {"message": "upstream error", "type": "server_error", "code": 500}
    )


@dataclass(frozen=True)
class Cut:
    """Abort the TCP connection mid-stream (no finish chunk, no [DONE])."""


@dataclass(frozen=True)
class Finish:
    """End with this finish_reason instead of "stop" (e.g. "length")."""

    reason: str = "stop"


Item = str | Text | Reasoning | Raw | Pause | Delay | Error | Cut | Finish


@dataclass(frozen=True)
class _Failure:
    status: int
    body: JsonDict
    headers: dict[str, str]


class FakeLLM(LocalServer):
    """See the module docstring. Runtime knobs: `chunk_chars`, `ttft`, `tokens_per_second`,
    `refuse_streaming`, `ignore_streaming`, `default_reply`, `models`."""

    def __init__(
        self,
        *,
        models: Sequence[str] = ("fake-model",),
        chunk_chars: int = 4,
        ttft: float = 0.0,
        tokens_per_second: float | None = None,
        default_reply: str | None = None,
        api_key: str | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.models = list(models)
        self.chunk_chars = chunk_chars
        self.ttft = ttft  # seconds before the first content delta (benchmarks)
        self.tokens_per_second = tokens_per_second  # one delta = one token (benchmarks)
        self.default_reply = default_reply  # None: echo the last user message
        self.api_key = api_key  # None: any Authorization header is accepted
        self.refuse_streaming = False  # stream requests answered 400 "stream is not supported"
        self.ignore_streaming = False  # stream requests answered with the whole JSON completion
        self.requests: list[JsonDict] = []
        self.disconnects = 0
        self.disconnected = asyncio.Event()
        self.completed = 0  # streams that reached [DONE]
        self.active_streams = 0
        self._scripts: deque[list[Item]] = deque()
        self._failures: deque[_Failure] = deque()
        self._stalls: deque[int] = deque()
        self._ids = itertools.count(1)

    @property
    def base_url(self) -> str:
        """What an OpenAI client takes as base_url (".../v1")."""
        return f"{self.root_url}/v1"

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._completions)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/_fake/reply", self._control_reply)
        app.router.add_get("/_fake/requests", self._control_requests)
        app.router.add_get("/_fake/health", self._control_health)
        return app

    async def before_stop(self) -> None:
        self.cancel_inflight()  # paused and stalled streams end now, not after a grace period

    # ------------------------------------------------------------------ scripting

    def reply(self, text: str, *, chunk_chars: int | None = None) -> None:
        """Queue a reply streamed as deltas of `chunk_chars` characters."""
        size = chunk_chars or self.chunk_chars
        self._scripts.append([Text(text[i : i + size]) for i in range(0, len(text), size)])

    def script(self, items: Iterable[Item]) -> None:
        """Queue a reply made of explicit items (see the module docstring)."""
        self._scripts.append(list(items))

    def fail_next(
        self,
        status: int,
        body: JsonDict | None = None,
        headers: dict[str, str] | None = None,
        count: int = 1,
    ) -> None:
        """The next `count` completion requests answer `status` with an OpenAI error body."""
        if body is None:
            body = {"error": {"message": f"fake failure {status}", "type": "server_error"}}
        self._failures.extend(_Failure(status, body, headers or {}) for _ in range(count))

    def stall_after(self, n_chunks: int, count: int = 1) -> None:
        """The next `count` streams stop after `n_chunks` deltas and hold the connection open
        until the client hangs up."""
        self._stalls.extend([n_chunks] * count)

    # ------------------------------------------------------------------ handlers

    async def _completions(self, request: web.Request) -> web.StreamResponse:
        if self.api_key is not None and request.headers.get("Authorization") != (
            f"Bearer {self.api_key}"
        ):
            return _error(401, "Incorrect API key provided", "invalid_api_key")
        try:
            body = await request.json()
        except json.JSONDecodeError:
            return _error(400, "We could not parse the JSON body of your request.")
        if not isinstance(body, dict):
            return _error(400, "We could not parse the JSON body of your request.")
        self.requests.append(body)
        if self._failures:
            failure = self._failures.popleft()
            return web.json_response(failure.body, status=failure.status, headers=failure.headers)
        if not isinstance(body.get("messages"), list) or not body["messages"]:
            return _error(400, "'messages' is a required property")
        stream = bool(body.get("stream"))
        if stream and self.refuse_streaming:
            return web.json_response({"error": {"message": "stream is not supported"}}, status=400)
        items = self._scripts.popleft() if self._scripts else self._default_items(body)
        model = str(body.get("model") or self.models[0])
        if not stream or self.ignore_streaming:
            return await self._complete(request, body, model, items)
        return await self._stream(request, body, model, items)

    def _default_items(self, body: JsonDict) -> list[Item]:
        text = self.default_reply
        if text is None:
            text = f"You said: {_last_user_text(body['messages'])}"
        size = self.chunk_chars
        return [Text(text[i : i + size]) for i in range(0, len(text), size)]

    async def _complete(
        self, request: web.Request, body: JsonDict, model: str, items: list[Item]
    ) -> web.Response:
        content, reasoning, finish = [], [], "stop"
        for item in items:
            match item:
                case str() | Text():
                    content.append(item if isinstance(item, str) else item.text)
                case Reasoning(text=text):
                    reasoning.append(text)
                case Pause(event=event):
                    await event.wait()
                case Delay(seconds=seconds):
                    await asyncio.sleep(seconds)
                case Error(error=error):
                    return web.json_response({"error": error}, status=500)
                case Finish(reason=reason):
                    finish = reason
                case Cut():
                    _abort(request.transport)
                    return web.Response(status=500)
        message: JsonDict = {"role": "assistant", "content": "".join(content)}
        if reasoning:
            message["reasoning_content"] = "".join(reasoning)
        return web.json_response(
            {
                "id": f"chatcmpl-fake-{next(self._ids)}",
                "object": "chat.completion",
                "created": int(time.time()),
                "model": model,
                "choices": [
                    {"index": 0, "message": message, "logprobs": None, "finish_reason": finish}
                ],
                "usage": _usage(body, len(content)),
            }
        )

    async def _stream(
        self, request: web.Request, body: JsonDict, model: str, items: list[Item]
    ) -> web.StreamResponse:
        stall = self._stalls.popleft() if self._stalls else None
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        frame = _Framer(f"chatcmpl-fake-{next(self._ids)}", model, include_usage)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        self.active_streams += 1
        cut = False
        try:
            await response.write(frame.delta({"role": "assistant", "content": ""}))
            sent, finish = 0, "stop"
            for item in items:
                if stall is not None and sent >= stall:
                    await asyncio.Future()  # until the client hangs up (handler cancelled)
                match item:
                    case str() | Text():
                        await self._pace(sent)
                        text = item if isinstance(item, str) else item.text
                        await response.write(frame.delta({"content": text}))
                        sent += 1
                    case Reasoning(text=text):
                        await self._pace(sent)
                        await response.write(frame.delta({"reasoning_content": text}))
                        sent += 1
                    case Raw(data=data):
                        await response.write(data.encode())
                    case Pause(event=event):
                        await event.wait()
                    case Delay(seconds=seconds):
                        await asyncio.sleep(seconds)
                    case Error(error=error):
                        await response.write(_sse({"error": error}))
                        await response.write_eof()
                        return response
                    case Cut():
                        cut = True
                        _abort(request.transport)
                        return response
                    case Finish(reason=reason):
                        finish = reason
            if stall is not None and sent >= stall:
                await asyncio.Future()
            await response.write(frame.delta({}, finish_reason=finish))
            if include_usage:
                await response.write(frame.usage(_usage(body, sent)))
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            self.completed += 1
            return response
        except ConnectionResetError:  # a write found the client gone
            self._client_left(cut)
            return response
        except asyncio.CancelledError:  # the client hung up while we waited (or we are stopping)
            self._client_left(cut)
            raise
        finally:
            self.active_streams -= 1

    def _client_left(self, cut: bool) -> None:
        if not cut and not self.closing:
            self.disconnects += 1
            self.disconnected.set()

    async def _pace(self, sent: int) -> None:
        """Benchmark pacing: time to first token, then one delta per 1/tokens_per_second."""
        if sent == 0 and self.ttft > 0:
            await asyncio.sleep(self.ttft)
        elif sent > 0 and self.tokens_per_second:
            await asyncio.sleep(1 / self.tokens_per_second)

    async def _models(self, request: web.Request) -> web.Response:
        data = [{"id": m, "object": "model", "created": 0, "owned_by": "fake"} for m in self.models]
        return web.json_response({"object": "list", "data": data})

    # ------------------------------------------------------------------ control API (standalone)

    async def _control_reply(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.reply(str(body["text"]), chunk_chars=body.get("chunk_chars"))
        return web.json_response({"ok": True})

    async def _control_requests(self, request: web.Request) -> web.Response:
        return web.json_response(self.requests)

    async def _control_health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})


class _Framer:
    def __init__(self, completion_id: str, model: str, include_usage: bool) -> None:
        self.base = {
            "id": completion_id,
            "object": "chat.completion.chunk",
            "created": int(time.time()),
            "model": model,
            "system_fingerprint": "fp_fake",
        }
        self.include_usage = include_usage

    def delta(self, delta: JsonDict, finish_reason: str | None = None) -> bytes:
        choice = {"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish_reason}
        chunk: JsonDict = {**self.base, "choices": [choice]}
        if self.include_usage:
            chunk["usage"] = None  # OpenAI sends null usage on every chunk but the last
        return _sse(chunk)

    def usage(self, usage: JsonDict) -> bytes:
        return _sse({**self.base, "choices": [], "usage": usage})


def _sse(obj: JsonDict) -> bytes:
    # Compact separators like OpenAI's own frames.
    return f"data: {json.dumps(obj, ensure_ascii=False, separators=(',', ':'))}\n\n".encode()


def _error(status: int, message: str, code: str | None = None) -> web.Response:
    error = {"message": message, "type": "invalid_request_error", "param": None, "code": code}
    return web.json_response({"error": error}, status=status)


def _last_user_text(messages: list[Any]) -> str:
    for message in reversed(messages):
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, list):  # multimodal parts
                return "".join(str(p.get("text", "")) for p in content if isinstance(p, dict))
            return str(content or "")
    return ""


def _usage(body: JsonDict, completion_tokens: int) -> JsonDict:
    prompt = sum(len(str(m.get("content", "")).split()) for m in body.get("messages", []))
    return {
        "prompt_tokens": prompt,
        "completion_tokens": completion_tokens,
        "total_tokens": prompt + completion_tokens,
    }


def _abort(transport: asyncio.BaseTransport | None) -> None:
    if transport is not None:
        with contextlib.suppress(Exception):
            transport.abort()  # type: ignore[attr-defined]
