"""Handler replies (notes, command answers) spend the same per-chat budget as answer frames."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.methods.base import TelegramType

from .limits import CallKind
from .scheduler import GRANTED, OutboundScheduler

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import Response, TelegramMethod


_DRAFT_METHODS = frozenset({"sendMessageDraft", "sendRichMessageDraft", "sendChatAction"})
_SENDING = ("send", "edit", "delete", "copy", "forward", "stop")


class BudgetMiddleware(BaseRequestMiddleware):
    """Puts every chat-targeted call made outside the scheduler (handler replies, command menus
    sent to a chat) through the chat's budget, as finals. Install with
    `bot.session.middleware(BudgetMiddleware(scheduler))`."""

    def __init__(self, scheduler: OutboundScheduler) -> None:
        self._scheduler = scheduler

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        name = method.__api_method__
        chat_id: Any = getattr(method, "chat_id", None)
        if GRANTED.get() or not isinstance(chat_id, int) or not name.startswith(_SENDING):
            return await make_request(bot, method)
        kind = CallKind.DRAFT if name in _DRAFT_METHODS else CallKind.MESSAGE
        return await self._scheduler.call(
            chat_id, lambda: make_request(bot, method), kind=kind, group=chat_id < 0
        )
