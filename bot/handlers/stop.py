"""Stop buttons: the draft's own Stop (Bot API 10.3) and the ⏹ button on edit-streamed messages."""

from __future__ import annotations

from aiogram import Router
from aiogram.types import CallbackQuery, MessageGenerationStopped

from bot.services.chat import ChatService
from bot.storage import ConversationKey

from . import filters


async def draft_stopped(event: MessageGenerationStopped, chat: ChatService) -> None:
    await chat.stop(ConversationKey(event.chat.id, event.message_thread_id or 0))


async def stop_button(query: CallbackQuery, chat: ChatService) -> None:
    try:
        _, chat_id, thread_id = (query.data or "").split(":")
        key = ConversationKey(int(chat_id), int(thread_id))
    except ValueError:
        await query.answer()
        return
    if query.message is None or query.message.chat.id != key.chat_id:
        await query.answer()  # a button only stops the answer of the chat it sits in
        return
    stopped = await chat.stop(key)
    await query.answer("Stopped." if stopped else "Already finished.")


def make_router() -> Router:
    router = Router(name=__name__)
    router.stopped_message_generation.register(draft_stopped)
    router.callback_query.register(stop_button, filters.button("stop:"))
    return router
