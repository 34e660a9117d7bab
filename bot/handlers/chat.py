"""Text messages → the chat service. Private chats always; groups only when addressed."""

from __future__ import annotations

import structlog
from aiogram import Router
from aiogram.filters import Command, CommandObject
from aiogram.types import Message, User

from bot.services.chat import ChatService, Prompt
from bot.services.gate import ConversationBusy

from . import filters
from .addressing import author_name, is_reply_to_bot, strip_mentions
from .context import key_of, target_of

log = structlog.get_logger(__name__)
BUSY = "⏳ I'm still answering your earlier messages — please wait a moment and send it again."
EMPTY = "Please send some text and I'll answer it."
UNKNOWN_COMMAND = "I don't know that command. Send /help to see what I can do."
NOT_TEXT = "I can only read text messages — please type your question."
# Characters that show nothing: a message of only these (and spaces) is as empty as "".
_INVISIBLE = dict.fromkeys(map(ord, "\u200b\u200c\u200d\u2060\ufeff\u200e\u200f"))


async def _ask(message: Message, chat: ChatService, text: str, author: str | None) -> None:
    if not text.translate(_INVISIBLE).strip():
        await message.answer(EMPTY)
        return
    prompt = Prompt(key=key_of(message), target=target_of(message), text=text, author=author)
    try:
        chat.submit(prompt)  # the answer runs on in its own task; this update is done
    except ConversationBusy:
        await message.answer(BUSY)


async def private_text(message: Message, chat: ChatService) -> None:
    text = message.text or ""
    if text.startswith("/"):
        # Known commands were routed before this handler; a typo should not reach the model.
        await message.answer(UNKNOWN_COMMAND)
        return
    await _ask(message, chat, text, None)


async def private_other(message: Message) -> None:
    await message.answer(NOT_TEXT)


async def group_ask(message: Message, command: CommandObject, chat: ChatService) -> None:
    await _ask(message, chat, command.args or "", author_name(message))


async def group_text(message: Message, chat: ChatService, me: User, group_mode: str) -> None:
    if message.text and message.text.startswith("/"):
        return  # a command for another bot, or one we don't know
    text = strip_mentions(message, me)
    if text is None and (group_mode == "all" or is_reply_to_bot(message, me)):
        text = message.text or ""
    if text is None:
        return  # not addressed to the bot: never reaches the LLM
    await _ask(message, chat, text, author_name(message))


async def group_other(message: Message, me: User) -> None:
    # Stickers, photos, voice…: a note only when addressed, so the group is not chatted at.
    if strip_mentions(message, me) is not None or is_reply_to_bot(message, me):
        await message.answer(NOT_TEXT)


def make_router() -> Router:
    # A fresh Router per Dispatcher: a router can belong to one parent only.
    router = Router(name=__name__)
    router.message.register(private_text, filters.private, filters.has_text)
    router.message.register(private_other, filters.private)
    router.message.register(group_ask, Command("ask", ignore_mention=False), filters.group)
    router.message.register(group_text, filters.group, filters.has_text)
    router.message.register(group_other, filters.group)
    return router
