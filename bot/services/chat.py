"""The conversation: history in, one answer at a time per conversation, LLM stream → transport."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import AsyncIterator, Callable
from dataclasses import dataclass

import structlog

from bot.clock import Clock
from bot.llm import (
    ChatRequest,
    Finish,
    LLMClient,
    LLMConnectionError,
    LLMError,
    LLMEvent,
    LLMStatusError,
    LLMStreamingUnsupported,
    ReasoningDelta,
    TextDelta,
    Usage,
)
from bot.render import MarkdownStream
from bot.storage import ConversationKey, Store, Turn
from bot.transport.answer import AnswerResult, AnswerStream
from bot.transport.manager import StreamManager
from bot.transport.target import ChatTarget

from .failure import APOLOGY, report_failure
from .gate import ConversationGate, Ticket
from .history import build_messages
from .notes import (
    LENGTH_NOTE,
    SHUTDOWN_NOTE,
    STOPPED_NOTE,
    TIMEOUT_NOTE,
    WAITING_SHUTDOWN_NOTE,
    describe_failure,
    stop_markup,
)
from .pacing import ReadPacing

log = structlog.get_logger(__name__)

RETRY_AFTER_CAP = 30.0


@dataclass(frozen=True)
class ChatConfig:
    default_model: str
    system_prompt: str
    history_max_tokens: int = 6000
    history_max_messages: int = 40
    temperature: float | None = None
    max_tokens: int | None = None
    max_retries: int = 2
    total_timeout: float = 600.0
    reasoning_display: str = "collapsed"
    # LOG_CONTENT: log the text of questions and answers (off: users' words stay out of logs).
    log_content: bool = False


@dataclass(frozen=True)
class Prompt:
    key: ConversationKey
    target: ChatTarget
    text: str
    author: str | None = None  # set in groups: turns are attributed to their sender


@dataclass
class _Active:
    stream: AnswerStream
    task: asyncio.Task[Usage | None] | None = None
    note: str | None = None

    def cancel(self) -> None:
        """Stop reading the model (which closes its connection: the provider stops generating).
        While the reader is sending the answer's first text itself, right after that call
        instead (AnswerStream.show_first): a draft cut off in flight could land after the final.
        The total time limit (asyncio.timeout in _consume) is the one cancel that does not wait.
        """
        if self.task is None:
            return
        if self.stream.first_in_flight:
            self.stream.after_first = self.task.cancel
        else:
            self.task.cancel()


@dataclass
class _Outcome:
    usage: Usage | None = None
    finish_reason: str | None = None
    started: bool = False


def _retryable(exc: LLMError) -> bool:
    if isinstance(exc, LLMStreamingUnsupported):
        return False
    if isinstance(exc, LLMStatusError):
        return exc.status_code == 429 or exc.status_code >= 500
    return isinstance(exc, LLMConnectionError)


class ChatService:
    def __init__(
        self, llm: LLMClient, store: Store, streams: StreamManager, gate: ConversationGate,
        config: ChatConfig, clock: Clock, pacing: ReadPacing | None = None,
        watch: Callable[[asyncio.Task[AnswerResult]], None] | None = None,
    ) -> None:
        """`watch` is called with each answer's task as it is made, in the handler's context."""
        self._llm = llm
        self._store = store
        self._streams = streams
        self._gate = gate
        self._cfg = config
        self._clock = clock
        self._pacing = pacing or ReadPacing(clock)
        self._active: dict[ConversationKey, _Active] = {}
        self._streaming_supported = True
        self._closing = False  # shutdown's grace period is over: nothing new starts
        self._tasks: set[asyncio.Task[AnswerResult]] = set()
        self._watch = watch

    def _new_render(self) -> MarkdownStream:
        return MarkdownStream(reasoning_display=self._cfg.reasoning_display)

    @property
    def active_count(self) -> int:
        return len(self._active)

    @property
    def tasks(self) -> set[asyncio.Task[AnswerResult]]:
        """Answers under way or waiting their turn."""
        return self._tasks

    def submit(self, prompt: Prompt) -> asyncio.Task[AnswerResult]:
        """Answer `prompt` after earlier ones of its conversation, in a task of its own; raises
        ConversationBusy at once if too many are waiting.

        The handler returns as soon as the task exists, so aiogram lets the update go: its
        objects and the dispatch chain's frames (~30 KB an answer) are not held while the
        answer streams (bench_flood, 1,000 chats, five runs: peak RSS 294-299 → 264-273 MB).
        A failure is logged and apologised for here, as the errors router does for handlers.
        """
        ticket = self._gate.reserve(prompt.key)
        task = asyncio.create_task(self._answer_in_turn(ticket, prompt))
        task.add_done_callback(lambda _: ticket.release())  # also if it never started
        self._tasks.add(task)
        task.add_done_callback(self._forget)
        if self._watch is not None:
            self._watch(task)
        return task

    async def _answer_in_turn(self, ticket: Ticket, prompt: Prompt) -> AnswerResult:
        try:
            async with ticket:
                return await self._answer_now(prompt)
        except Exception as exc:
            await report_failure(exc, lambda: self._streams.open(
                prompt.target, self._new_render()).finish(APOLOGY))
            raise  # for the task's watcher (metrics); _forget marks it retrieved

    def _forget(self, task: asyncio.Task[AnswerResult]) -> None:
        self._tasks.discard(task)
        if not task.cancelled():
            task.exception()  # reported by _answer_in_turn: asyncio need not log it again

    async def stop(self, key: ConversationKey) -> bool:
        active = self._active.get(key)
        if active is None or active.task is None or active.task.done():
            return False
        active.note = STOPPED_NOTE
        active.cancel()
        return True

    async def interrupt_all(self) -> None:
        """Shutdown: finalize every answer in flight with a note; those still waiting their turn
        get a note instead of an answer (their updates are confirmed: Telegram won't resend)."""
        self._closing = True
        for active in list(self._active.values()):
            if active.task is not None and not active.task.done():
                active.note = SHUTDOWN_NOTE
                active.cancel()

    async def _answer_now(self, prompt: Prompt) -> AnswerResult:
        if self._closing:
            return await self._streams.open(prompt.target, self._new_render()).finish(
                WAITING_SHUTDOWN_NOTE)
        key = prompt.key
        conv = await self._store.settings(key)
        system = conv.system_prompt if conv.system_prompt is not None else self._cfg.system_prompt
        user_turn = Turn("user", prompt.text, name=prompt.author)
        turns = [*await self._store.history(key), user_turn]
        request = ChatRequest(
            messages=build_messages(system, turns, max_tokens=self._cfg.history_max_tokens,
                                    max_messages=self._cfg.history_max_messages),
            model=conv.model or self._cfg.default_model,
            temperature=self._cfg.temperature, max_tokens=self._cfg.max_tokens,
        )
        await self._store.append(key, user_turn)
        if self._cfg.log_content:
            log.info("answer.prompt", chat_id=prompt.target.chat_id, text=prompt.text)

        render = self._new_render()
        stream = self._streams.open(prompt.target, render, stop_markup(key))
        active = self._active[key] = _Active(stream)
        started_at = time.monotonic()
        outcome = _Outcome()
        note: str | None = None
        try:
            # The model is asked at once and the "Thinking…" placeholder goes out meanwhile:
            # the placeholder costs no Bot API round trip before the first token.
            active.task = asyncio.create_task(self._consume(request, stream, outcome))
            # 403 (blocked, removed): stop generating for a chat that can no longer read it.
            stream.on_unavailable = active.cancel
            try:
                await stream.start()
            except BaseException:
                active.task.cancel()
                raise
            if stream.unavailable:
                active.task.cancel()  # the request is closed before the model says much
            elif self._closing:  # interrupt_all ran while the stream was starting
                active.note = SHUTDOWN_NOTE
                active.task.cancel()
            try:
                await active.task
            except asyncio.CancelledError:
                current = asyncio.current_task()
                if current is not None and current.cancelling():
                    note = active.note or SHUTDOWN_NOTE
                    raise
                if active.note is None and not stream.unavailable:
                    note = SHUTDOWN_NOTE
                    raise
                note = active.note
            except LLMError as exc:
                log.warning("llm.failed", error_type=type(exc).__name__, error=str(exc),
                            started=outcome.started)
                note = describe_failure(exc, started=bool(stream.source))
            except TimeoutError:
                note = TIMEOUT_NOTE
            if note is None and outcome.finish_reason == "length":
                note = LENGTH_NOTE
        finally:
            self._active.pop(key, None)
            result = await stream.finish(note)
            answer = stream.source.strip()
            if stream.target.chat_id != key.chat_id:
                # The group became a supergroup mid-answer: the conversation goes with it now,
                # whether or not its service message was handled yet (the second move is empty).
                await self._store.move_chat(key.chat_id, stream.target.chat_id)
                key = ConversationKey(stream.target.chat_id, key.thread_id)
            if answer:
                tokens = outcome.usage.completion_tokens if outcome.usage else None
                await self._store.append(key, Turn("assistant", answer, tokens=tokens))
            log.info("answer.done", chat_id=prompt.target.chat_id, mode=stream.mode.value,
                     chars=len(answer), messages=len(result.message_ids), frames=result.frames,
                     ms=round((time.monotonic() - started_at) * 1000), note=note is not None,
                     **({"text": answer} if self._cfg.log_content else {}))
        return result

    async def _consume(self, request: ChatRequest, stream: AnswerStream, out: _Outcome) -> None:
        attempt = 0
        async with asyncio.timeout(self._cfg.total_timeout):
            while True:
                try:
                    if self._streaming_supported:
                        await self._stream_once(request, stream, out)
                    else:
                        await self._complete_once(request, stream, out)
                    return
                except LLMStreamingUnsupported as exc:
                    log.warning("llm.streaming_unsupported", answered=exc.completion is not None)
                    self._streaming_supported = False
                    if exc.completion is not None:  # it answered in full: no second request
                        self._show_completion(exc.completion, stream, out)
                        return
                    continue
                except LLMError as exc:
                    # Only before the first token: a retry after it would repeat visible text.
                    if out.started or not _retryable(exc) or attempt >= self._cfg.max_retries:
                        raise
                    if isinstance(exc, LLMStatusError) and (exc.retry_after or 0) > RETRY_AFTER_CAP:
                        raise  # asked to come back much later: say so now, not after a long wait
                    attempt += 1
                    delay = min(RETRY_AFTER_CAP, 0.5 * 2 ** attempt * (0.5 + random.random()))
                    if isinstance(exc, LLMStatusError) and exc.retry_after is not None:
                        delay = min(RETRY_AFTER_CAP, max(delay, exc.retry_after))
                    log.info("llm.retry", attempt=attempt, delay=round(delay, 2),
                             error_type=type(exc).__name__)
                    await self._clock.sleep(delay)

    async def _stream_once(self, request: ChatRequest, stream: AnswerStream, out: _Outcome) -> None:
        pace = self._pacing.pace(lambda: out.started)
        with self._pacing.one_stream():
            async with self._llm.stream(request, pace=pace) as events:
                await self._read(events, stream, out)

    @staticmethod
    async def _read(events: AsyncIterator[LLMEvent], stream: AnswerStream, out: _Outcome) -> None:
        async for event in events:
            if isinstance(event, TextDelta | ReasoningDelta):
                if isinstance(event, TextDelta):
                    stream.push(event.text)
                else:
                    stream.push_reasoning(event.text)
                out.started = True
                if not stream.shown:  # the answer's first text: sent without a hand-off
                    await stream.show_first()
            elif isinstance(event, Usage):
                out.usage = event
            elif isinstance(event, Finish):
                out.finish_reason = event.reason

    async def _complete_once(
        self, request: ChatRequest, stream: AnswerStream, out: _Outcome
    ) -> None:
        self._show_completion(await self._llm.complete(request), stream, out)

    @staticmethod
    def _show_completion(
        completion: tuple[str, str, Usage | None], stream: AnswerStream, out: _Outcome
    ) -> None:
        text, reasoning, usage = completion
        out.started = True
        out.usage = usage
        if reasoning:
            stream.push_reasoning(reasoning)
        stream.push(text)

