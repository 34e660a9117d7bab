"""Update filters written as coroutines.

aiogram runs every filter or handler that is not a coroutine function, magic filters (`F.…`)
included, in a worker thread (`asyncio.to_thread`), once per update it is checked against. For
a check like `chat.type == "private"` the thread hop costs far more than the check: with 1,000
questions arriving at once (bench_flood) it was a fifth of the CPU spent taking them in, and
every hop hands the GIL back and forth with the event loop.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from aiogram.types import CallbackQuery, Message

GROUP_TYPES = frozenset({"group", "supergroup"})


async def private(message: Message) -> bool:
    return message.chat.type == "private"


async def group(message: Message) -> bool:
    return message.chat.type in GROUP_TYPES


async def has_text(message: Message) -> bool:
    return bool(message.text)


def button(prefix: str) -> Callable[[CallbackQuery], Awaitable[bool]]:
    """Inline-button presses whose callback data starts with `prefix`."""

    async def pressed(query: CallbackQuery) -> bool:
        return query.data is not None and query.data.startswith(prefix)

    return pressed
