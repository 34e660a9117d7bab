"""What users read about an answer beyond its text: the note that ends an answer that did not
end normally, and the Stop button of an answer streaming in an edited message."""

from __future__ import annotations

from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup

from bot.llm import LLMConnectionError, LLMError, LLMStatusError, LLMTimeoutError
from bot.storage import ConversationKey

STOPPED_NOTE = "⏹ Stopped."
SHUTDOWN_NOTE = "⚠️ Interrupted: the bot is restarting."
WAITING_SHUTDOWN_NOTE = "⚠️ The bot is restarting: please send that message again in a minute."
TIMEOUT_NOTE = "⚠️ Answer interrupted: it took longer than the time limit."
LENGTH_NOTE = "✂️ Cut off: the model reached its length limit."


def stop_markup(key: ConversationKey) -> InlineKeyboardMarkup:
    return InlineKeyboardMarkup(inline_keyboard=[[
        InlineKeyboardButton(text="⏹ Stop", callback_data=f"stop:{key.chat_id}:{key.thread_id}")
    ]])


def describe_failure(exc: LLMError, *, started: bool) -> str:
    if isinstance(exc, LLMTimeoutError):
        reason = "the model endpoint stopped responding"
    elif isinstance(exc, LLMConnectionError):
        reason = ("the connection to the model endpoint was lost" if started
                  else "the model endpoint could not be reached")
    elif isinstance(exc, LLMStatusError):
        reason = {
            401: "the model endpoint rejected the API key (HTTP 401)",
            403: "the model endpoint refused access (HTTP 403)",
            404: "the model or endpoint was not found (HTTP 404)",
            429: "the model endpoint is rate-limiting requests (HTTP 429)",
        }.get(exc.status_code, f"the model endpoint returned HTTP {exc.status_code}")
    else:
        reason = "the model endpoint reported an error"
    if started:
        return f"⚠️ Answer interrupted: {reason}."
    return f"⚠️ Sorry, no answer: {reason}. Please try again later."
