"""The app's Dispatcher never sends an update through a worker thread.

aiogram runs any filter or handler that is not a coroutine function (magic filters `F.…`
included) with `asyncio.to_thread`, once per update checked: a thread hop per check, and the GIL
passed back and forth with the event loop (bot/handlers/filters.py).
"""

from __future__ import annotations

from aiogram import Router

from tests.e2e.harness import harness


def routers(root: Router) -> list[Router]:
    out = [root]
    for sub in root.sub_routers:
        out += routers(sub)
    return out


async def test_every_filter_and_handler_is_a_coroutine() -> None:
    async with harness() as h:
        threaded = [
            f"{router.name}.{name}: {getattr(obj.callback, '__qualname__', obj.callback)!r}"
            for router in routers(h.app.dispatcher)
            for name, observer in router.observers.items()
            for handler in observer.handlers
            for obj in (handler, *(handler.filters or ()))
            if not obj.awaitable
        ]
        checked = sum(len(observer.handlers) for router in routers(h.app.dispatcher)
                      for observer in router.observers.values())
    assert checked >= 10
    assert threaded == []
