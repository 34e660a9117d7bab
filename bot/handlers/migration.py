"""A group that became a supergroup keeps its conversations (access follows it in
`middlewares/access.py`)."""

from __future__ import annotations

import structlog
from aiogram import Router
from aiogram.types import Message

from bot.storage import Store

from .context import migration_of

log = structlog.get_logger(__name__)


async def migrated(message: Message) -> bool:
    return migration_of(message) is not None


async def chat_migrated(message: Message, store: Store) -> None:
    # Both chats' service messages arrive; the second finds nothing left to move.
    ids = migration_of(message)
    if ids is None:
        return
    old, new = ids
    moved = await store.move_chat(old, new)
    if moved:
        log.info("chat.conversations_moved", chat_id=old, new_chat_id=new, conversations=moved)


def make_router() -> Router:
    router = Router(name=__name__)
    router.message.register(chat_migrated, migrated)
    return router
