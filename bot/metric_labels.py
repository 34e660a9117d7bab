"""How an error is named in a metric's label: Bot API call outcomes, model error kinds, and why
an answer failed. Kept apart from the metrics themselves: these are pure functions of the
exception, tested on their own (tests/deploy/test_metrics.py)."""

from __future__ import annotations

import asyncio

from aiogram.exceptions import (
    TelegramAPIError,
    TelegramBadRequest,
    TelegramConflictError,
    TelegramForbiddenError,
    TelegramNetworkError,
    TelegramNotFound,
    TelegramRetryAfter,
    TelegramServerError,
    TelegramUnauthorizedError,
)

from bot.llm import (
    LLMConnectionError,
    LLMError,
    LLMStatusError,
    LLMStreamError,
    LLMStreamingUnsupported,
    LLMTimeoutError,
)

_TELEGRAM_OUTCOMES: tuple[tuple[type[BaseException], str], ...] = (
    (TelegramRetryAfter, "retry_after"),
    (TelegramBadRequest, "bad_request"),
    (TelegramForbiddenError, "forbidden"),
    (TelegramUnauthorizedError, "unauthorized"),
    (TelegramNotFound, "not_found"),
    (TelegramConflictError, "conflict"),
    (TelegramServerError, "server_error"),
    (TelegramNetworkError, "network"),
    (asyncio.CancelledError, "cancelled"),
)


def llm_error_kind(exc: LLMError) -> str:
    if isinstance(exc, LLMTimeoutError):
        return "timeout"
    if isinstance(exc, LLMConnectionError):
        return "connection"
    if isinstance(exc, LLMStreamingUnsupported):
        return "streaming_unsupported"
    if isinstance(exc, LLMStatusError):
        if exc.status_code in (401, 403, 404, 429):
            return f"http_{exc.status_code}"
        return "http_5xx" if exc.status_code >= 500 else "http_4xx"
    if isinstance(exc, LLMStreamError):
        return "stream"
    return "other"


def telegram_outcome(exc: BaseException) -> str:
    for kind, name in _TELEGRAM_OUTCOMES:
        if isinstance(exc, kind):
            return name
    return "error"


def failure_reason(exc: BaseException) -> str:
    if isinstance(exc, asyncio.CancelledError):
        return "cancelled"
    seen: BaseException | None = exc
    while seen is not None:  # transport errors wrap the Telegram error they came from
        if isinstance(seen, LLMError):
            return llm_error_kind(seen)
        if isinstance(seen, TelegramAPIError):
            return "telegram"
        seen = seen.__cause__
    return "internal"
