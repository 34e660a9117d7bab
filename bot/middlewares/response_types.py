"""Keeps the Bot API response classes alive for the life of the session.

aiogram validates every answer with `Response[method.__returning__]`, a pydantic generic built
on the spot. pydantic caches those classes in a WeakValueDictionary, so the next garbage
collection drops them and the next call rebuilds one (schema generation, ~1 ms of CPU): with
hundreds of calls a second that was 5 % of the bot's CPU. One strong reference per method class
makes the cache hit every time.

The classes of the calls an answer streams with are built when the bot starts: built on the
first call instead, `Response[Message]` took ~4 ms in front of the first sendMessage of the
process (a group's first visible text came 7 ms after the first token instead of 2).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from aiogram.client.session.middlewares.base import (
    BaseRequestMiddleware,
    NextRequestMiddlewareType,
)
from aiogram.methods import (
    DeleteMessage,
    EditMessageText,
    Response,
    SendChatAction,
    SendMessage,
    SendMessageDraft,
)
from aiogram.methods.base import TelegramType

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import TelegramMethod


# What an answer sends: its frames, finals, typing indicator, and the cleanup of a stopped one.
STREAMING_METHODS: tuple[type[Any], ...] = (
    SendMessageDraft, SendMessage, EditMessageText, SendChatAction, DeleteMessage,
)


class KeepResponseTypes(BaseRequestMiddleware):
    def __init__(self, prebuild: tuple[type[Any], ...] = STREAMING_METHODS) -> None:
        self._kept: dict[type[Any], type[Any]] = {
            kind: Response[kind.__returning__]  # type: ignore[name-defined]
            for kind in prebuild
        }

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
