"""Process B of the flood benchmark: the fake Bot API (with Telegram's flood limits) and the fake
LLM, in their own process so the bot's CPU, memory and event-loop lag are the bot's alone.

Talks JSON lines on stdin/stdout:
    -> {"telegram": url, "llm": url}                      once listening
    <- {"cmd": "start", "chats": [[id, group], ...], "tokens": n}
    <- {"cmd": "wait", "timeout": s}   -> the report, when every final is there (or at timeout)
    <- {"cmd": "quit"}

Times are `time.monotonic()`: the same clock in every process on one machine (not the loop's:
uvloop's counts whole milliseconds).

Runs on uvloop where installed, as the bot does (BENCH_FAKES_LOOP=asyncio for asyncio's): the
fakes stand in for servers on other machines, and on a 2-core box every millisecond of CPU they
spend is one the bot may wait for.

    uv run python -m bench.flood.fakes [telegram] [llm]      # both when neither is named
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
import json
import os
import sys
import time
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web

from bench.flood.load import (
    TOKEN,
    TOKENS_PER_SECOND,
    TTFT,
    Chat,
    answer_tokens,
    final_text,
    parse_question,
    question,
    unmarked,
    visible,
)
from bot import eventloop
from tests.fakes.llm import FakeLLM, Item, Text, _Framer, _usage
from tests.fakes.telegram import FakeTelegram, FloodLimits

TEXT_METHODS = frozenset({"sendMessage", "editMessageText", "sendMessageDraft"})
FINAL_METHODS = frozenset({"sendMessage", "editMessageText"})

RTT_HALF = float(os.environ.get("BENCH_TG_RTT_MS", "0")) / 2000

_stream_chat: contextvars.ContextVar[int] = contextvars.ContextVar("stream_chat", default=0)
_inside_window: contextvars.ContextVar[bool] = contextvars.ContextVar("inside", default=False)


@dataclass
class ChatLog:
    group: bool
    tokens: int
    expected: str
    token_times: list[float] = field(default_factory=list)
    token_chars: list[int] = field(default_factory=list)  # cumulative, for the plot
    calls: list[list[Any]] = field(default_factory=list)  # [at, method, ok, code, visible, inside]
    final_at: float | None = None
    asked_at: float | None = None  # the question was queued for getUpdates
    llm_at: float | None = None  # the bot asked the model


class BenchTelegram(FakeTelegram):
    """Records a compact per-chat log instead of every call's parameters (1,000s of chats)."""

    accept_all = True  # see LocalServer.accept_all

    def __init__(self, logs: dict[int, ChatLog], done: asyncio.Event) -> None:
        super().__init__(token=TOKEN, flood=FloodLimits(), clock=time.monotonic)
        self.logs = logs
        self.done = done
        self.pending = 0

    async def _handle(self, request: web.Request) -> web.Response:
        # BENCH_TG_RTT_MS: a network between the bot and Telegram, half of it each way (the
        # call is seen, and timed, when it arrives): loopback's ~1 ms round trip is mostly the
        # two event loops, so "first text within one round trip" means little without it.
        if RTT_HALF:
            await asyncio.sleep(RTT_HALF)
        response = await super()._handle(request)
        if RTT_HALF:
            await asyncio.sleep(RTT_HALF)
        return response

    def _check_flood(self, method: str, params: dict[str, Any]) -> None:
        before = self.calls_inside_retry_window
        try:
            super()._check_flood(method, params)
        finally:
            _inside_window.set(self.calls_inside_retry_window > before)

    def _record(self, method: str, params: dict[str, Any], at: float, status: int,
                description: str | None, result: Any) -> None:
        chat_id = params.get("chat_id")
        log = self.logs.get(chat_id) if isinstance(chat_id, int) else None
        if log is not None:
            ok = status < 400
            text = params.get("text")
            shown = len(visible(str(text))) if method in TEXT_METHODS and text else -1
            log.calls.append([at, method, ok, status, shown, _inside_window.get()])
            if (ok and log.final_at is None and method in FINAL_METHODS
                    and unmarked(visible(str(text))) == log.expected):
                log.final_at = at
                self.pending -= 1
                if self.pending == 0:
                    self.done.set()
        self._notify()


class BenchLLM(FakeLLM):
    """Answers `q<chat>n<tokens>` with that chat's answer at 40 tokens/s on an absolute schedule
    (token i at first + i/40 s, so a busy process does not slow the stream down), and remembers
    when each token was written."""

    accept_all = True  # 1,000 model streams open within seconds: see LocalServer.accept_all

    def __init__(self, logs: dict[int, ChatLog]) -> None:
        super().__init__(ttft=TTFT, tokens_per_second=TOKENS_PER_SECOND)
        self.logs = logs

    def _default_items(self, body: dict[str, Any]) -> list[Item]:
        asked = None
        for message in reversed(body.get("messages", [])):
            if message.get("role") == "user":
                asked = parse_question(str(message.get("content", "")))
                break
        if asked is None:
            return [Text("?")]
        chat_id, tokens = asked
        _stream_chat.set(chat_id)
        if (log := self.logs.get(chat_id)) is not None and log.llm_at is None:
            log.llm_at = time.monotonic()
        return [Text(t) for t in answer_tokens_cached(chat_id, tokens)]

    async def _stream(self, request: web.Request, body: dict[str, Any], model: str,
                      items: list[Item]) -> web.StreamResponse:
        """A bench chat's stream, one write per token as the tests' fake does, but cheaper: each
        token is a timer callback (not a task waking from a sleep) that writes a chunk made from
        a template straight to the socket (not through aiohttp's `StreamResponse.write`), and
        a callback that runs late writes every token due by then at once.

        The fakes stand in for servers on other machines; here they share two cores with the
        bot. The tests' way kept this process at a full core while 1,000 answers streamed
        (40,000 tokens a second), and every Bot API call queued behind the tokens: a draft
        reached the fake Bot API 105 ms after the bot wrote it at the median, 450 ms at p90,
        and that delay, not the bot's pace, decided what the fake recorded.
        """
        chat_id = _stream_chat.get()
        if (log := self.logs.get(chat_id)) is None or request.transport is None:
            return await super()._stream(request, body, model, items)
        include_usage = bool((body.get("stream_options") or {}).get("include_usage"))
        frame = _Framer(f"chatcmpl-bench-{chat_id}", model, include_usage)
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"})
        await response.prepare(request)
        self.active_streams += 1
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        try:
            # Through aiohttp first: it sends the headers with this chunk.
            await response.write(frame.delta({"role": "assistant", "content": ""}))
            texts = [item.text if isinstance(item, Text) else str(item) for item in items]
            self._write_tokens(request.transport, log, texts, frame, done)
            await done
            await response.write(frame.delta({}, finish_reason="stop"))
            if include_usage:
                await response.write(frame.usage(_usage(body, len(items))))
            await response.write(b"data: [DONE]\n\n")
            await response.write_eof()
            self.completed += 1
            return response
        except (ConnectionResetError, asyncio.CancelledError) as exc:
            self._client_left(False)
            if isinstance(exc, asyncio.CancelledError):
                raise
            return response
        finally:
            done.cancel()  # no-op once done; else the pending callback stops writing
            self.active_streams -= 1

    def _write_tokens(self, transport: asyncio.Transport, log: ChatLog, texts: list[str],
                      frame: _Framer, done: asyncio.Future[None]) -> None:
        """Token i at (first token) + i/40 s, an absolute schedule: a busy process does not
        slow the stream down. Each write is timed in the chat's log."""
        loop = asyncio.get_running_loop()
        head, tail = frame.delta({"content": _MARK}).split(_MARK_JSON)

        def write(sent: int) -> None:
            if done.done():
                return
            if transport.is_closing():
                done.set_exception(ConnectionResetError())
                return
            now = time.monotonic()
            chunks = []
            # Every token due by now, in one write: a server that fell behind sends what it
            # has, as a busy inference server does (on time, that is one token).
            while True:
                log.token_times.append(now)
                text = texts[sent]
                log.token_chars.append((log.token_chars[-1] if log.token_chars else 0)
                                       + len(text))
                data = head + json.dumps(text, ensure_ascii=False).encode() + tail
                chunks.append(b"%x\r\n%s\r\n" % (len(data), data))
                sent += 1
                if sent == len(texts):
                    transport.write(b"".join(chunks))
                    done.set_result(None)
                    return
                due = log.token_times[0] + sent / TOKENS_PER_SECOND
                if due > now:
                    break
            transport.write(b"".join(chunks))
            loop.call_later(due - now, write, sent)

        if texts:
            loop.call_later(self.ttft, write, 0)
        else:
            done.set_result(None)


# A stand-in for a token's text in a chunk template: split there, the JSON around it is reused.
_MARK = "\x00token\x00"
_MARK_JSON = json.dumps(_MARK).encode()
_ANSWERS: dict[tuple[int, int], list[str]] = {}


def answer_tokens_cached(chat_id: int, tokens: int) -> list[str]:
    key = (chat_id, tokens)
    if key not in _ANSWERS:
        _ANSWERS[key] = answer_tokens(chat_id, tokens)
    return _ANSWERS[key]


def report(logs: dict[int, ChatLog], tg: BenchTelegram | None,
           plot_chat: int | None) -> dict[str, Any]:
    """This process's half of the run: the Bot API's (calls, finals) or the model's (tokens)."""
    chats: dict[str, dict[str, Any]] = {}
    for chat_id, log in logs.items():
        if tg is not None:
            chats[str(chat_id)] = {"group": log.group, "calls": log.calls,
                                   "final_at": log.final_at, "final_chars": len(log.expected),
                                   "asked_at": log.asked_at}
            continue
        chats[str(chat_id)] = {
            "first_token": log.token_times[0] if log.token_times else None,
            "last_token": log.token_times[-1] if log.token_times else None,
            "tokens": len(log.token_times),
            "llm_at": log.llm_at,
        }
        if chat_id == plot_chat:
            chats[str(chat_id)]["token_curve"] = [
                [t, c] for t, c in zip(log.token_times, log.token_chars, strict=True)]
    out: dict[str, Any] = {"chats": chats, "cpu_s": time.process_time()}
    if tg is not None:
        out["inside_retry_window"] = tg.calls_inside_retry_window
    return out


def merge(telegram: dict[str, Any], llm: dict[str, Any], *, one_process: bool = False,
          ) -> dict[str, Any]:
    """One run's log from the two fakes' halves."""
    chats = {chat_id: {**calls, **llm["chats"].get(chat_id, {})}
             for chat_id, calls in telegram["chats"].items()}
    run = {"chats": chats, "inside_retry_window": telegram["inside_retry_window"]}
    if one_process:
        return {**run, "fakes_cpu_s": telegram["cpu_s"]}
    return {**run, "fakes_cpu_s": telegram["cpu_s"] + llm["cpu_s"],
            "fake_telegram_cpu_s": telegram["cpu_s"], "fake_llm_cpu_s": llm["cpu_s"]}


async def read_line() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


def emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def main(roles: list[str]) -> None:
    """`roles`: telegram, llm, or both (the default, and `bench_flood.py`'s).

    Both in one process, the fakes were a full core while 1,000 answers streamed, and a draft
    reached the fake Bot API 105 ms after the bot wrote it at the median (450 ms at p90):
    behind 40,000 token writes a second. Apart (BENCH_FAKES=split), the Bot API answers in
    13-22 ms, but three busy processes share two cores and the bot gets less of one: in three
    interleaved pairs its lag p99 was 103-135 ms apart against 63-159 ms together, with fewer
    frames, so together stays the default."""
    logs: dict[int, ChatLog] = {}
    done = asyncio.Event()
    tg = BenchTelegram(logs, done) if "telegram" in roles else None
    llm = BenchLLM(logs) if "llm" in roles else None
    async with contextlib.AsyncExitStack() as stack:
        urls = {}
        if tg is not None:
            urls["telegram"] = (await stack.enter_async_context(tg)).base_url
        if llm is not None:
            urls["llm"] = (await stack.enter_async_context(llm)).base_url
        emit(urls)
        plot_chat = None
        while line := await read_line():
            cmd = json.loads(line)
            if cmd["cmd"] == "start":
                tokens = int(cmd["tokens"])
                chats = [Chat(int(c), bool(g)) for c, g in cmd["chats"]]
                plot_chat = chats[0].chat_id
                for chat in chats:
                    logs[chat.chat_id] = ChatLog(chat.group, tokens,
                                                 unmarked(final_text(chat.chat_id, tokens)))
                if tg is not None:
                    tg.pending = len(chats)
                    for chat in chats:
                        logs[chat.chat_id].asked_at = time.monotonic()
                        if chat.group:
                            tg.group_text(chat.chat_id, chat.user_id, question(chat, tokens))
                        else:
                            tg.private_text(chat.user_id, question(chat, tokens))
                emit({"ok": True})
            elif cmd["cmd"] == "wait":
                with contextlib.suppress(TimeoutError):  # report what arrived by then
                    await asyncio.wait_for(done.wait(), float(cmd["timeout"]))
                if tg is not None and llm is not None:
                    emit(merge(report(logs, tg, plot_chat), report(logs, None, plot_chat),
                               one_process=True))
                else:
                    emit(report(logs, tg, plot_chat))
            elif cmd["cmd"] == "quit":
                break


if __name__ == "__main__":
    loop = "asyncio" if os.environ.get("BENCH_FAKES_LOOP") == "asyncio" else "auto"
    eventloop.run(main(sys.argv[1:] or ["telegram", "llm"]), loop)
