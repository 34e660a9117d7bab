"""On Python 3.11, an aiohttp request whose body goes out with its headers, not a loop turn later.

Used by both sessions: the Bot API's (transport/jsonsession.py) and the model's (llm/wire.py).

aiohttp buffers a request's headers and writes them with the body in `write_bytes`, which it
runs as a task of its own: on Python 3.12+ an eager one (it runs at once, inside `send`), on
3.11 an ordinary one, which first runs on the event loop's next turn. With a thousand answers
streaming, a turn of the loop takes tens of milliseconds, so on 3.11 every Bot API call,
an answer's first text among them, reached Telegram one turn later than on 3.12: the
1,000-chat benchmark's call -> fake Bot API p50 was 34-66 ms on 3.11 against 5-13 ms on 3.12.

`EagerBodyRequest.write_bytes` takes the first step of aiohttp's own coroutine itself, as an
eager task would, and hands the task aiohttp creates only what is left: for a Bot API call's
small JSON body, nothing (the write completes in that first step). If the step stops to wait
(a full socket buffer), the rest runs in the task as before. Python 3.12+ uses aiohttp's class
unchanged. The model's request gains the same turn: at a thousand answers, the model is
asked a loop turn sooner.
"""

from __future__ import annotations

import collections.abc
import sys
from collections.abc import Coroutine, Generator
from typing import Any

from aiohttp import ClientRequest

_STARTED = object()


class _Rest(collections.abc.Coroutine[Any, Any, None]):
    """The remainder of a coroutine that took its first step outside any task. To the task
    that runs it, it looks like that coroutine from its start: its first step hands over what
    the coroutine stopped on, and everything sent or thrown later (a cancellation, even before
    the first step) goes to the coroutine where it stopped."""

    def __init__(self, coro: Coroutine[Any, Any, None], pending: Any) -> None:
        self._coro = coro
        self._pending = pending

    def send(self, value: Any) -> Any:
        if self._pending is not _STARTED:
            pending, self._pending = self._pending, _STARTED
            return pending
        return self._coro.send(value)

    def throw(self, exc: Any, *rest: Any) -> Any:
        self._pending = _STARTED
        return self._coro.throw(exc, *rest)

    def close(self) -> None:
        self._coro.close()

    def __await__(self) -> Generator[Any, Any, None]:
        return self

    def __iter__(self) -> _Rest:
        return self

    def __next__(self) -> Any:
        return self.send(None)


async def _nothing() -> None:
    return None


async def _raising(exc: Exception) -> None:
    raise exc


class EagerBodyRequest(ClientRequest):
    def write_bytes(self, *args: Any, **kwargs: Any) -> Coroutine[Any, Any, None]:
        coro = super().write_bytes(*args, **kwargs)
        try:
            pending = coro.send(None)
        except StopIteration:
            return _nothing()  # written already: the task aiohttp makes has nothing left
        except Exception as exc:  # the task reports it, as it would have
            return _raising(exc)
        return _Rest(coro, pending)


# What the Bot API session passes to aiohttp as `request_class`.
REQUEST_CLASS: type[ClientRequest] = (
    EagerBodyRequest if sys.version_info < (3, 12) else ClientRequest
)
