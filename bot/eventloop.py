"""Which event loop runs the bot: uvloop where it is installed (Linux and macOS; the image), else
asyncio's own. `EVENT_LOOP=asyncio` opts out.

Why uvloop: at a thousand answers streaming at once the bot is CPU-bound in one loop, and a
quarter of that CPU was asyncio's own machinery (the selector, transports, handles, timers),
which uvloop runs in C on libuv. The bot's code does not change: aiogram, aiohttp and httpx run
on either loop; the tests run on asyncio's, and tests/faults/test_process.py runs `python -m bot`
on both and checks which one it got.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from typing import Any, Literal, TypeVar

T = TypeVar("T")

LoopChoice = Literal["auto", "uvloop", "asyncio"]
LoopFactory = Callable[[], asyncio.AbstractEventLoop]


class LoopUnavailable(RuntimeError):
    """EVENT_LOOP=uvloop where uvloop is not installed (Windows, or a slimmed install)."""


def loop_factory(choice: LoopChoice) -> tuple[str, LoopFactory | None]:
    """The loop's name and its factory (None: asyncio's default)."""
    if choice == "asyncio":
        return "asyncio", None
    try:
        import uvloop
    except ImportError:
        if choice == "uvloop":
            raise LoopUnavailable("EVENT_LOOP=uvloop but uvloop is not installed") from None
        return "asyncio", None
    return "uvloop", uvloop.new_event_loop


def run(main: Coroutine[Any, Any, T], choice: LoopChoice) -> T:
    """asyncio.run(main) on the chosen loop (asyncio.Runner: Python 3.11 has no loop_factory
    argument to asyncio.run)."""
    _, factory = loop_factory(choice)
    with asyncio.Runner(loop_factory=factory) as runner:
        return runner.run(main)
