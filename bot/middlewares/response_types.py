"""Keeps the Bot API response classes alive for the life of the session.

aiogram validates every answer with `Response[method.__returning__]`, a pydantic generic built
on the spot. pydantic caches those classes in a WeakValueDictionary, so the next garbage
collection drops them and the next call rebuilds one (schema generation, ~1 ms of CPU): with
hundreds of calls a second that was 5 % of the bot's CPU. One strong reference per method class
makes the cache hit every time.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.methods import Response
from aiogram.methods.base import TelegramType

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import TelegramMethod


class KeepResponseTypes(BaseRequestMiddleware):
    def __init__(self) -> None:
        self._kept: dict[type[Any], type[Any]] = {}

    async def __call__(
        self,
        make_request: NextRequestMiddlewareType[TelegramType],
        bot: Bot,
        method: TelegramMethod[TelegramType],
    ) -> Response[TelegramType]:
        kind = type(method)
        if kind not in self._kept:
            self._kept[kind] = Response[method.__returning__]  # type: ignore[name-defined]
        return await make_request(bot, method)
