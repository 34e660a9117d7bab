"""A group that became a supergroup keeps its conversations (access follows it in
`middlewares/access.py`)."""

from __future__ import annotations

import structlog
from aiogram import Router
from aiogram.types import Message

from bot.storage import Store

log = structlog.get_logger(__name__)


async def migrated(message: Message) -> bool:
    return bool(message.migrate_to_chat_id or message.migrate_from_chat_id)


async def chat_migrated(message: Message, store: Store) -> None:
    # Both chats' service messages arrive; the second finds nothing left to move.
    if message.migrate_to_chat_id:
        old, new = message.chat.id, message.migrate_to_chat_id
    else:
        old, new = int(message.migrate_from_chat_id or 0), message.chat.id
    moved = await store.move_chat(old, new)
    if moved:
        log.info("chat.conversations_moved", chat_id=old, new_chat_id=new, conversations=moved)


def make_router() -> Router:
    router = Router(name=__name__)
    router.message.register(chat_migrated, migrated)
    return router
