"""The LLM client as the metrics see it: an answer starts when the model is asked; its tokens
and errors are counted when the stream or completion ends (bot/metrics.py keeps the counts)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from bot.llm import ChatRequest, LLMClient, LLMError, LLMEvent, Pace, Usage

if TYPE_CHECKING:
    from bot.metrics import Metrics


class MeteredLLMClient(LLMClient):
    """The LLM client, counting requests, tokens and errors into `metrics`."""

    def __init__(self, *args: Any, metrics: Metrics, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._metrics = metrics

    def stream(
        self, request: ChatRequest, *, pace: Pace | None = None
    ) -> AbstractAsyncContextManager[AsyncIterator[LLMEvent]]:
        return self._metered_stream(request, pace)

    @asynccontextmanager
    async def _metered_stream(
        self, request: ChatRequest, pace: Pace | None
    ) -> AsyncIterator[AsyncIterator[LLMEvent]]:
        self._metrics.llm_asked()
        events = None
        try:
            async with super().stream(request, pace=pace) as inner:
                events = _UsageTap(inner)
                yield events
        except LLMError as exc:
            self._metrics.llm_done(exc, events.usage if events else None)
            raise
        # A cancelled stream (stop, shutdown) is neither a success nor an LLM error.
        self._metrics.llm_done(None, events.usage if events else None)

    async def complete(self, request: ChatRequest) -> tuple[str, str, Usage | None]:
        self._metrics.llm_asked()
        try:
            text, reasoning, usage = await super().complete(request)
        except LLMError as exc:
            self._metrics.llm_done(exc, None)
            raise
        self._metrics.llm_done(None, usage)
        return text, reasoning, usage


class _UsageTap:
    """Passes events through, keeping the last `Usage` (some providers repeat it per chunk)."""

    def __init__(self, events: AsyncIterator[LLMEvent]) -> None:
        self._events = events
        self.usage: Usage | None = None

    def __aiter__(self) -> _UsageTap:
        return self

    async def __anext__(self) -> LLMEvent:
        event = await anext(self._events)
        if isinstance(event, Usage):
            self.usage = event
        return event
