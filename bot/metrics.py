"""What the bot observes about itself, in Prometheus terms, hooked in at the edges.

Nothing in the chat service or the transport knows about metrics. Three hooks see everything:

- `UpdateProbe`, a Dispatcher outer middleware: one `_Answer` record per update, kept in a
  context variable so that tasks started while handling the update (the stream pump, the LLM
  consumer) see the same record;
- `MeteredLLMClient` (bot/metered_llm.py): an answer starts when the model is asked; tokens
  and LLM errors;
- `TelegramCalls`, an aiogram session request middleware: every Bot API call by method and
  outcome, 429s, the first text a user can see, and `Liveness` (getMe/getUpdates succeeded).

Each App has its own `CollectorRegistry`, so several apps in one process never collide. How an
error is named in a label is bot/metric_labels.py's.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from contextvars import ContextVar
from dataclasses import dataclass
from typing import Any

from aiogram import BaseMiddleware, Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware, NextRequestMiddlewareType
from aiogram.exceptions import TelegramRetryAfter
from aiogram.methods import Response, TelegramMethod
from aiogram.methods.base import TelegramType
from aiogram.types import TelegramObject, Update
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, generate_latest
from prometheus_client.exposition import CONTENT_TYPE_LATEST

from bot.llm import LLMError, Usage
from bot.metric_labels import failure_reason, llm_error_kind, telegram_outcome

__all__ = ["CONTENT_TYPE_LATEST", "Liveness", "Metrics", "health_max_silence"]

# Seconds; the first visible text is usually model latency plus one Bot API call.
_FIRST_VISIBLE_BUCKETS = (0.25, 0.5, 1, 1.5, 2, 3, 5, 8, 13, 20, 30, 60)
_DURATION_BUCKETS = (0.5, 1, 2, 5, 10, 20, 30, 60, 120, 300, 600)
# Calls after which a user sees answer text (an empty draft is the "Thinking…" placeholder).
_VISIBLE_METHODS = frozenset({"sendMessage", "editMessageText", "sendMessageDraft"})
# Proof that updates can reach the bot in polling mode (webhook mode marks deliveries itself).
_LIVENESS_METHODS = frozenset({"getMe", "getUpdates"})


def health_max_silence(telegram_timeout: float) -> float:
    """Seconds without proof of contact with Telegram before /healthz fails. A long poll
    returns at least every 10 s and the webhook probe runs every minute; this allows several
    failed attempts in a row (each may take up to TELEGRAM_TIMEOUT) before alarming."""
    return max(120.0, 4 * telegram_timeout)


class Liveness:
    """When the bot last heard from Telegram in a way that proves updates can arrive."""

    def __init__(self, now: Callable[[], float], max_silence: float) -> None:
        self._now = now
        self.max_silence = max_silence
        self.last_ok: float | None = None

    def mark(self) -> None:
        self.last_ok = self._now()

    def age(self) -> float | None:
        return None if self.last_ok is None else self._now() - self.last_ok

    def fresh(self) -> bool:
        age = self.age()
        return age is not None and age <= self.max_silence


@dataclass
class _Answer:
    received: float  # when handling of the update began
    started: bool = False  # the model was asked
    visible: bool = False  # the user saw answer text
    llm_error: str | None = None  # the last model call failed (cleared by a later success)
    detached: bool = False  # the answer goes on in a task of its own: that task ends it


_current: ContextVar[_Answer | None] = ContextVar("llmbot_answer", default=None)


class Metrics:
    def __init__(self, now: Callable[[], float] = time.monotonic, max_silence: float = 120.0):
        self.now = now
        self.registry = r = CollectorRegistry()
        self.liveness = Liveness(now, max_silence)
        p = "llmbot_"
        self.updates = Counter(f"{p}updates", "Updates received, by type", ["type"], registry=r)
        self.answers_started = Counter(
            f"{p}answers_started", "Answers for which the model was asked", registry=r)
        self.answers_finished = Counter(
            f"{p}answers_finished", "Answers delivered without error (stopped ones too)",
            registry=r)
        self.answers_failed = Counter(
            f"{p}answers_failed", "Answers ended by an error, by reason", ["reason"], registry=r)
        self.first_visible = Histogram(
            f"{p}answer_first_visible_seconds", "From taking the message to the first answer "
            "text on screen", buckets=_FIRST_VISIBLE_BUCKETS, registry=r)
        self.answer_duration = Histogram(
            f"{p}answer_duration_seconds", "From taking the message to the final message",
            buckets=_DURATION_BUCKETS, registry=r)
        self.active_streams = Gauge(
            f"{p}active_streams", "Answers being streamed right now", registry=r)
        self.tokens = Counter(
            f"{p}llm_tokens", "Tokens reported by the endpoint (in: prompt, out: completion)",
            ["direction"], registry=r)
        self.llm_errors = Counter(
            f"{p}llm_errors", "Model endpoint errors (retried ones too), by kind", ["kind"],
            registry=r)
        self.telegram_calls = Counter(
            f"{p}telegram_calls", "Bot API calls by method and outcome", ["method", "outcome"],
            registry=r)
        self.telegram_429 = Counter(
            f"{p}telegram_429", "Bot API calls refused with 429 (flood control)", ["method"],
            registry=r)
        self.webhook_requests = Counter(
            f"{p}webhook_requests", "Requests to the webhook route, by outcome", ["outcome"],
            registry=r)
        Gauge(f"{p}telegram_silence_seconds", "Seconds since getMe/getUpdates or a webhook "
              "delivery last succeeded (-1: never)", registry=r,
              ).set_function(lambda: self.liveness.age() or -1.0)
        self.telegram_middleware = TelegramCalls(self)
        self.update_middleware = UpdateProbe(self)

    def watch_active(self, count: Callable[[], int]) -> None:
        self.active_streams.set_function(lambda: float(count()))

    def watch_load(self, late: Callable[[], float], share: Callable[[], float],
                   intake: Callable[[], float], waiting: Callable[[], int]) -> None:
        """The event loop's lateness, the interim-frame pace and the intake of new updates it
        allows (transport/load.py), and how many updates wait to be taken in."""
        p, r = "llmbot_", self.registry
        Gauge(f"{p}event_loop_lag_seconds", "How late the event loop ran at its last check",
              registry=r).set_function(late)
        Gauge(f"{p}interim_frame_share", "Share of each chat's interim-frame pace granted now "
              "(1: all of it; less while the event loop runs late)", registry=r,
              ).set_function(share)
        Gauge(f"{p}update_intake_share", "Share of the full intake of new updates granted now "
              "(1: all of it; less while the event loop runs late and updates wait)",
              registry=r).set_function(intake)
        Gauge(f"{p}updates_waiting", "Updates received but not yet taken in (they wait while "
              "the event loop runs late)", registry=r).set_function(lambda: float(waiting()))

    def render(self) -> bytes:
        return generate_latest(self.registry)

    # -- called by the hooks below ---------------------------------------------------------
    def llm_asked(self) -> None:
        answer = _current.get()
        if answer is not None and not answer.started:
            answer.started = True
            self.answers_started.inc()

    def llm_done(self, error: LLMError | None, usage: Usage | None) -> None:
        if usage is not None:
            self.tokens.labels("in").inc(usage.prompt_tokens or 0)
            self.tokens.labels("out").inc(usage.completion_tokens or 0)
        kind = llm_error_kind(error) if error is not None else None
        if kind is not None:
            self.llm_errors.labels(kind).inc()
        answer = _current.get()
        if answer is not None:
            answer.llm_error = kind

    def answer_detached(self, task: asyncio.Task[Any]) -> None:
        """The update being handled hands its answer on to `task`: the answer ends with the
        task, not with the handler (the task runs in a copy of this context: same _Answer)."""
        answer = _current.get()
        if answer is None:
            return
        answer.detached = True

        def ended(task: asyncio.Task[Any]) -> None:
            raised = asyncio.CancelledError() if task.cancelled() else task.exception()
            self.answer_ended(answer, raised)

        task.add_done_callback(ended)

    def answer_ended(self, answer: _Answer, raised: BaseException | None) -> None:
        if not answer.started:
            return  # commands, refusals, "busy" notes: no answer was attempted
        reason = failure_reason(raised) if raised is not None else answer.llm_error
        if reason is None:
            self.answers_finished.inc()
        else:
            self.answers_failed.labels(reason).inc()
        self.answer_duration.observe(self.now() - answer.received)

    def call_done(self, method: TelegramMethod[Any], error: BaseException | None) -> None:
        name = method.__api_method__
        outcome = "ok" if error is None else telegram_outcome(error)
        self.telegram_calls.labels(name, outcome).inc()
        if isinstance(error, TelegramRetryAfter):
            self.telegram_429.labels(name).inc()
        if error is not None:
            return
        if name in _LIVENESS_METHODS:
            self.liveness.mark()
        answer = _current.get()
        if (answer is not None and answer.started and not answer.visible
                and name in _VISIBLE_METHODS and getattr(method, "text", None)):
            answer.visible = True
            self.first_visible.observe(self.now() - answer.received)


class UpdateProbe(BaseMiddleware):
    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    async def __call__(
        self, handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject, data: dict[str, Any],
    ) -> Any:
        if isinstance(event, Update):
            self._m.updates.labels(event.event_type).inc()
        answer = _Answer(received=self._m.now())
        token = _current.set(answer)
        try:
            result = await handler(event, data)
        except BaseException as exc:
            if not answer.detached:
                self._m.answer_ended(answer, exc)
            raise
        finally:
            _current.reset(token)
        if not answer.detached:
            self._m.answer_ended(answer, None)
        return result


class TelegramCalls(BaseRequestMiddleware):
    def __init__(self, metrics: Metrics) -> None:
        self._m = metrics

    async def __call__(
        self, make_request: NextRequestMiddlewareType[TelegramType], bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        try:
            response = await make_request(bot, method)
        except BaseException as exc:
            self._m.call_done(method, exc)
            raise
        self._m.call_done(method, None)
        return response


