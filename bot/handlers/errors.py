"""The last line of defence: an exception in a handler is logged with its context and the user gets
a short apology. Polling goes on either way (aiogram only logs), but without this the user would
hear nothing and the log line would lack the chat.
"""

from __future__ import annotations

import functools
from collections.abc import Awaitable, Callable

from aiogram import Router
from aiogram.types import Chat, ErrorEvent, Message, Update

from bot.services.failure import APOLOGY, report_failure

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
    update = event.update
    chat = _chat_of(update)
    message = _message_of(update)
    apologize: Callable[[], Awaitable[object]] | None = None
    if message is not None:
        apologize = functools.partial(message.answer, APOLOGY)
    elif update.callback_query is not None:
        apologize = functools.partial(update.callback_query.answer, APOLOGY_SHORT)
    # The error middleware sits outside the log-context middleware: bind the context here.
    await report_failure(event.exception, apologize, update_id=update.update_id,
                         chat_id=chat.id if chat else None)


def make_router() -> Router:
    router = Router(name=__name__)
    router.errors.register(on_error)
    return router
