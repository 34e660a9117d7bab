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

    uv run python -m bench.flood.fakes
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
from tests.fakes.llm import FakeLLM, Item, Text
from tests.fakes.telegram import FakeTelegram, FloodLimits

TEXT_METHODS = frozenset({"sendMessage", "editMessageText", "sendMessageDraft"})
FINAL_METHODS = frozenset({"sendMessage", "editMessageText"})

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

    async def _pace(self, sent: int) -> None:
        log = self.logs.get(_stream_chat.get())
        if log is None:
            return await super()._pace(sent)
        if sent == 0:
            await asyncio.sleep(self.ttft)
        else:
            delay = log.token_times[0] + sent / TOKENS_PER_SECOND - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
        log.token_times.append(time.monotonic())
        chars = len(answer_tokens_cached(_stream_chat.get(), log.tokens)[sent])
        log.token_chars.append((log.token_chars[-1] if log.token_chars else 0) + chars)
        return None


_ANSWERS: dict[tuple[int, int], list[str]] = {}


def answer_tokens_cached(chat_id: int, tokens: int) -> list[str]:
    key = (chat_id, tokens)
    if key not in _ANSWERS:
        _ANSWERS[key] = answer_tokens(chat_id, tokens)
    return _ANSWERS[key]


def report(logs: dict[int, ChatLog], tg: BenchTelegram, plot_chat: int | None) -> dict[str, Any]:
    chats = {}
    for chat_id, log in logs.items():
        chats[str(chat_id)] = {
            "group": log.group,
            "first_token": log.token_times[0] if log.token_times else None,
            "last_token": log.token_times[-1] if log.token_times else None,
            "tokens": len(log.token_times),
            "calls": log.calls,
            "final_at": log.final_at,
            "final_chars": len(log.expected),
            "asked_at": log.asked_at,
            "llm_at": log.llm_at,
        }
        if chat_id == plot_chat:
            chats[str(chat_id)]["token_curve"] = [
                [t, c] for t, c in zip(log.token_times, log.token_chars, strict=True)]
    return {"chats": chats, "inside_retry_window": tg.calls_inside_retry_window,
            "fakes_cpu_s": time.process_time()}


async def read_line() -> str:
    return await asyncio.get_running_loop().run_in_executor(None, sys.stdin.readline)


def emit(obj: Any) -> None:
    sys.stdout.write(json.dumps(obj, separators=(",", ":")) + "\n")
    sys.stdout.flush()


async def main() -> None:
    logs: dict[int, ChatLog] = {}
    done = asyncio.Event()
    async with BenchTelegram(logs, done) as tg, BenchLLM(logs) as llm:
        emit({"telegram": tg.base_url, "llm": llm.base_url})
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
                emit(report(logs, tg, plot_chat))
            elif cmd["cmd"] == "quit":
                break


if __name__ == "__main__":
    eventloop.run(main(), "asyncio" if os.environ.get("BENCH_FAKES_LOOP") == "asyncio" else "auto")
