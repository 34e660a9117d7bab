"""EagerBodyRequest: on Python 3.11 a Bot API call's body leaves with its headers, in the turn of
the event loop that makes the call, as aiohttp itself does on 3.12+ (an eager task). A body that
has to wait (a slow reader, a body produced in parts) is finished by the task, cancellable.

Real aiogram Bot on JsonSession (a JSON call goes on its own wire, botapi_wire.py, and is
compared with aiogram's own session), real httpx over the model's AiohttpTransport, real aiohttp
over loopback sockets; the far end is a plain asyncio server that notes in which turn of the
loop each complete request arrived.
"""

from __future__ import annotations

import asyncio
import inspect
import sys
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any, ClassVar

import httpx
import pytest
from aiogram import Bot
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiohttp import ClientRequest, ClientSession, web

from bot import eagerbody
from bot.eagerbody import EagerBodyRequest
from bot.llm import wire
from bot.llm.wire import AiohttpTransport
from bot.transport.jsonsession import JsonSession

TOKEN = "42:TEST-TOKEN"
OK = b'{"ok":true,"result":true}'
pytestmark = pytest.mark.skipif(
    sys.version_info >= (3, 12), reason="aiohttp writes the body in the same turn on 3.12+")


class LoopTurns:
    """Counts the event loop's turns: a callback that schedules itself again each turn."""

    def __init__(self) -> None:
        self.count = 0
        self._loop = asyncio.get_running_loop()
        self._handle = self._loop.call_soon(self._tick)

    def _tick(self) -> None:
        self.count += 1
        self._handle = self._loop.call_soon(self._tick)

    def stop(self) -> None:
        self._handle.cancel()


class NotingServer(asyncio.Protocol):
    """Answers every request with `OK`, noting the loop turn in which it had all of it."""

    turns: LoopTurns | None = None
    arrived: ClassVar[list[int]] = []

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        assert isinstance(transport, asyncio.Transport)
        self._transport = transport
        self._buffer = b""

    def data_received(self, data: bytes) -> None:
        self._buffer += data
        head, sep, body = self._buffer.partition(b"\r\n\r\n")
        if not sep:
            return
        length = next(int(line.split(b":")[1]) for line in head.split(b"\r\n")
                      if line.lower().startswith(b"content-length:"))
        if len(body) < length:
            return
        self._buffer = body[length:]
        NotingServer.arrived.append(self.turns.count if self.turns else -1)
        self._transport.write(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                              b"Content-Length: %d\r\n\r\n%s" % (len(OK), OK))


@pytest.fixture
async def server() -> AsyncIterator[str]:
    loop = asyncio.get_running_loop()
    srv = await loop.create_server(NotingServer, "127.0.0.1", 0)
    port = srv.sockets[0].getsockname()[1]
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.close()
        await srv.wait_closed()


async def turns_to_arrive(call: Callable[[str], Awaitable[object]]) -> int:
    """Loop turns from making a call to the server having all of it (connection already open)."""
    await call("warm-up: opens the connection")
    turns = NotingServer.turns = LoopTurns()
    try:
        start = turns.count
        await call("x" * 900)
        return NotingServer.arrived[-1] - start
    finally:
        turns.stop()
        NotingServer.turns = None


async def bot_api_turns(base: str, session: type[AiohttpSession] = JsonSession) -> int:
    bot = Bot(TOKEN, session=session(api=TelegramAPIServer.from_base(base)))

    async def draft(text: str) -> None:
        assert await bot.send_message_draft(chat_id=1, draft_id=1, text=text) is True

    try:
        return await turns_to_arrive(draft)
    finally:
        await bot.session.close()


async def model_turns(base: str) -> int:
    async with httpx.AsyncClient(transport=AiohttpTransport()) as http:
        async def ask(text: str) -> None:
            response = await http.post(f"{base}/v1/chat/completions", json={"text": text})
            assert response.json() == {"ok": True, "result": True}
        return await turns_to_arrive(ask)


async def test_a_bot_api_call_reaches_the_server_a_loop_turn_sooner(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # JsonSession writes a JSON call on its own wire (botapi_wire.py) at once; aiogram's own
    # session, on aiohttp's request class, a turn later.
    eager = await bot_api_turns(server)
    plain = await bot_api_turns(server, AiohttpSession)
    assert eager < plain, (eager, plain)


async def test_the_model_request_reaches_the_server_a_loop_turn_sooner(
    server: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    eager = await model_turns(server)
    monkeypatch.setattr(wire, "REQUEST_CLASS", ClientRequest)
    plain = await model_turns(server)
    assert eager < plain, (eager, plain)


@pytest.fixture
async def sink() -> AsyncIterator[tuple[str, asyncio.Event]]:
    """An aiohttp server that answers with the size of what it read; `release` lets it read."""
    release = asyncio.Event()

    async def size(request: web.Request) -> web.Response:
        await release.wait()
        return web.Response(text=str(len(await request.read())))

    app = web.Application(client_max_size=64 * 2**20)
    app.router.add_post("/size", size)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    port = runner.addresses[0][1]
    try:
        yield f"http://127.0.0.1:{port}/size", release
    finally:
        await runner.cleanup()


def body_in_two(gate: asyncio.Event) -> AsyncIterator[bytes]:
    """A request body whose second part waits for `gate`: the first step stops there."""
    async def parts() -> AsyncIterator[bytes]:
        yield b"part one, "
        await gate.wait()
        yield b"part two"
    return parts()


class Rests(list[Any]):
    """Every remainder handed to a task: proof the first step stopped to wait."""

    def __init__(self) -> None:
        super().__init__()
        self.made = asyncio.Event()


@pytest.fixture
def rests(monkeypatch: pytest.MonkeyPatch) -> Rests:
    made = Rests()

    class Noted(eagerbody._Rest):
        def __init__(self, *args: Any) -> None:
            super().__init__(*args)
            made.append(self)
            made.made.set()

    monkeypatch.setattr(eagerbody, "_Rest", Noted)
    return made


async def first_step_stopped(rests: Rests) -> None:
    """Until the first step stopped, and the task got the remainder and waits on it."""
    await asyncio.wait_for(rests.made.wait(), 10)
    for _ in range(3):  # the task's own first step is queued behind this one
        await asyncio.sleep(0)


async def test_a_body_that_waits_is_finished_by_the_task(
    sink: tuple[str, asyncio.Event], rests: Rests,
) -> None:
    url, release = sink
    gate = asyncio.Event()
    release.set()
    async with ClientSession(request_class=EagerBodyRequest) as http:
        call = asyncio.create_task(http.post(url, data=body_in_two(gate)))
        await first_step_stopped(rests)
        gate.set()
        async with await call as resp:
            assert await resp.text() == str(len(b"part one, part two"))
        async with http.post(url, data=b"small, on the same pool") as resp:
            assert await resp.text() == "23"
    assert len(rests) == 1


async def test_cancelled_while_the_body_waits_the_write_ends_where_it_stopped(
    sink: tuple[str, asyncio.Event], rests: Rests,
) -> None:
    url, release = sink
    gate = asyncio.Event()
    async with ClientSession(request_class=EagerBodyRequest) as http:
        call = asyncio.create_task(http.post(url, data=body_in_two(gate)))
        await first_step_stopped(rests)
        call.cancel()
        with pytest.raises(asyncio.CancelledError):
            await call
        for _ in range(3):  # the writing task's cancellation runs behind the call's
            await asyncio.sleep(0)
        # aiohttp's own write got the cancellation and cleaned up (closed its connection)
        assert inspect.getcoroutinestate(rests[0]._coro) == inspect.CORO_CLOSED
        release.set()
        async with http.post(url, data=b"after the cancel") as resp:
            assert await resp.text() == "16"
