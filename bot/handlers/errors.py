"""The last line of defence: an exception in a handler is logged with its context and the user gets
a short apology. Polling goes on either way (aiogram only logs), but without this the user would
hear nothing and the log line would lack the chat.
"""

from __future__ import annotations

import structlog
from aiogram import Router
from aiogram.exceptions import TelegramAPIError, TelegramForbiddenError, TelegramRetryAfter
from aiogram.types import Chat, ErrorEvent, Message, Update

from bot.transport.outbound import ChatUnavailable

log = structlog.get_logger(__name__)

APOLOGY = "⚠️ Sorry, something went wrong on my side. Please try again."
APOLOGY_SHORT = "Sorry, something went wrong."


def _message_of(update: Update) -> Message | None:
    return update.message or update.edited_message or update.business_message


def _chat_of(update: Update) -> Chat | None:
    message = _message_of(update)
    if message is not None:
        return message.chat
    query = update.callback_query
    if query is not None and query.message is not None:
        return query.message.chat
    return None


async def on_error(event: ErrorEvent) -> None:
    exc, update = event.exception, event.update
    chat = _chat_of(update)
    # The error middleware sits outside the log-context middleware: bind the context here.
    context = {"update_id": update.update_id, "chat_id": chat.id if chat else None}
    if isinstance(exc, TelegramForbiddenError | ChatUnavailable):
        log.warning("chat.unavailable", error=str(exc), **context)
        return  # blocked or removed: an apology could not arrive either
    log.error("handler.failed", error_type=type(exc).__name__, error=str(exc), exc_info=exc,
              **context)
    if isinstance(exc, TelegramRetryAfter):
        return  # the chat is in a flood window: one more message now would only extend it
    try:
        message = _message_of(update)
        if message is not None:
            await message.answer(APOLOGY)
        elif update.callback_query is not None:
            await update.callback_query.answer(APOLOGY_SHORT)
    except TelegramAPIError as send_exc:
        log.warning("handler.apology_failed", error_type=type(send_exc).__name__, **context)


def make_router() -> Router:
    router = Router(name=__name__)
    router.errors.register(on_error)
    return router
