"""Each update is handled once, also across restarts (Telegram re-sends unconfirmed updates)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import structlog
from aiogram import BaseMiddleware
from aiogram.types import TelegramObject, Update

from bot.storage import Store

log = structlog.get_logger(__name__)


class DedupeMiddleware(BaseMiddleware):
    def __init__(self, store: Store) -> None:
        self._store = store

    async def __call__(
        self,
        handler: Callable[[TelegramObject, dict[str, Any]], Awaitable[Any]],
        event: TelegramObject,
        data: dict[str, Any],
    ) -> Any:
        if isinstance(event, Update) and not await self._store.first_time(event.update_id):
            log.info("update.duplicate", update_id=event.update_id)
            return None
        return await handler(event, data)
