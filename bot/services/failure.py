"""What a failure tells the user and the log, whether a handler raised it or an answer's task."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError, TelegramRetryAfter

from bot.transport.outbound import ChatUnavailable, topic_gone

log = structlog.get_logger(__name__)

APOLOGY = "⚠️ Sorry, something went wrong on my side. Please try again."


async def report_failure(
    exc: BaseException, apologize: Callable[[], Awaitable[object]] | None, **context: Any,
) -> None:
    """Log `exc` with `context` and, where a message can still arrive, `apologize()`."""
    if isinstance(exc, TelegramForbiddenError | ChatUnavailable) or topic_gone(exc):
        log.warning("chat.unavailable", error=str(exc), **context)
        return  # blocked, removed, or the topic deleted: an apology could not arrive either
    log.error("handler.failed", error_type=type(exc).__name__, error=str(exc), exc_info=exc,
              **context)
    if isinstance(exc, TelegramRetryAfter) or apologize is None:
        return  # a 429: the chat is in a flood window, one more message now would extend it
    try:
        await apologize()
    except (TelegramAPIError, ChatUnavailable) as send_exc:
        log.warning("handler.apology_failed", error_type=type(send_exc).__name__, **context)
