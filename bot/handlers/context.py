"""Where a message's answer goes and which conversation it belongs to."""

from __future__ import annotations

from aiogram.types import Message

from bot.storage import ConversationKey
from bot.transport.target import ChatTarget


def thread_of(message: Message) -> int | None:
    # Only topic messages carry a usable thread id; the General topic has none (passing 1 fails).
    return message.message_thread_id if message.is_topic_message else None


def key_of(message: Message) -> ConversationKey:
    return ConversationKey(message.chat.id, thread_of(message) or 0)


def target_of(message: Message) -> ChatTarget:
    private = message.chat.type == "private"
    return ChatTarget(
        chat_id=message.chat.id,
        thread_id=thread_of(message),
        private=private,
        reply_to=None if private else message.message_id,
        asked=message.message_id,
    )


def migration_of(message: Message) -> tuple[int, int] | None:
    """(old, new) chat ids when `message` is one of the two service messages Telegram sends as a
    group becomes a supergroup (one in each chat, in either order); else None."""
    if message.migrate_to_chat_id:
        return message.chat.id, message.migrate_to_chat_id
    if message.migrate_from_chat_id:
        return message.migrate_from_chat_id, message.chat.id
    return None
