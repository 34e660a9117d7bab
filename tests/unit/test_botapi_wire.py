"""BotApiWire: Bot API calls on kept-alive HTTP/1.1 connections.

Real sockets on loopback, on asyncio's loop and on uvloop (production's). The far end is a plain
asyncio server (httptools parsing the requests) whose answers each test scripts: answered at
once, held until released, never answered, cut off, or answered in chunks. What the far end
saw (connections, requests) is what is asserted.
"""

from __future__ import annotations

import asyncio
import contextlib
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any, cast

import httptools
import pytest
import trustme
from aiogram import Bot
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramNetworkError

from bot import eventloop
from bot.transport.botapi_wire import BotApiWire, ConnectionLost
from bot.transport.jsonsession import JsonSession

TOKEN = "42:SECRET-TOKEN"
OK = b'{"ok":true,"result":true}'


def answer(body: bytes = OK, *, close: bool = False) -> bytes:
    extra = b"Connection: close\r\n" if close else b""
    return (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n%sContent-Length: %d\r\n\r\n%s"
            % (extra, len(body), body))


@dataclass
class Request:
    conn: int  # which connection (in order of arrival) carried it
    path: str
    headers: dict[str, str]
    body: bytes
    reply: Callable[[bytes], None]
    cut: Callable[[], None]


Script = Callable[[Request], None]


def at_once(req: Request) -> None:
    req.reply(answer(b'{"ok":true,"result":"%s"}' % req.body))


@dataclass
class Server:
    script: Script = at_once
    connections: int = 0
    requests: list[Request] = field(default_factory=list)
    arrived: asyncio.Event = field(default_factory=asyncio.Event)
    port: int = 0

    def protocol(self) -> asyncio.Protocol:
        server = self
        server.connections += 1
        number = server.connections

        class Handler(asyncio.Protocol):
            def connection_made(self, transport: asyncio.BaseTransport) -> None:
                self.transport = cast(asyncio.Transport, transport)  # uvloop's: no subclass
                self.parser = httptools.HttpRequestParser(self)
                self.headers: dict[str, str] = {}
                self.body = b""

            def data_received(self, data: bytes) -> None:
                self.parser.feed_data(data)

            def on_url(self, url: bytes) -> None:
                self.url = url.decode()

            def on_header(self, name: bytes, value: bytes) -> None:
                self.headers[name.decode().lower()] = value.decode()

            def on_body(self, body: bytes) -> None:
                self.body += body

            def on_message_complete(self) -> None:
                req = Request(number, self.url, self.headers, self.body,
                              self.transport.write, self.transport.close)
                self.headers, self.body = {}, b""
                server.requests.append(req)
                server.arrived.set()
                server.script(req)

        return Handler()

    async def wait_for(self, count: int) -> None:
        async with asyncio.timeout(5):
            while len(self.requests) < count:
                self.arrived.clear()
                await self.arrived.wait()

    def url(self, method: str = "sendMessage") -> str:
        return f"http://127.0.0.1:{self.port}/bot{TOKEN}/{method}"


Body = Callable[["Server", BotApiWire], Awaitable[None]]
Call = asyncio.Task[tuple[int, bytes]]


async def one_held_one_queued(server: Server, wire: BotApiWire,
                              ) -> tuple[list[Request], Call, Call]:
    """On a wire of one connection: call 1 held at the server (its request in `held`), call 2
    queued for the connection."""
    held: list[Request] = []
    server.script = held.append
    first = asyncio.create_task(wire.post(server.url(), b"1", 5))
    await server.wait_for(1)
    queued = asyncio.create_task(wire.post(server.url(), b"2", 5))
    await asyncio.sleep(0)  # it is queued for the one connection
    return held, first, queued


LOOPS = pytest.mark.parametrize("loop", ["asyncio", "uvloop"])


def run(loop: eventloop.LoopChoice, body: Body, **wire_args: Any) -> Server:
    """`body` against a fresh server and wire, on `loop`; the server, for what it saw."""
    srv = Server()

    async def main() -> None:
        listening = await asyncio.get_running_loop().create_server(srv.protocol, "127.0.0.1", 0)
        srv.port = listening.sockets[0].getsockname()[1]
        wire = BotApiWire(**({"limit": 2, "user_agent": "test"} | wire_args))
        try:
            async with asyncio.timeout(10):
                await body(srv, wire)
        finally:
            wire.close()
            listening.close()

    eventloop.run(main(), loop)
    return srv


@LOOPS
def test_calls_share_one_kept_alive_connection(loop: eventloop.LoopChoice) -> None:
    async def body(server: Server, wire: BotApiWire) -> None:
        for i in range(3):
            status, got = await wire.post(server.url(), b"%d" % i, 5)
            assert (status, got) == (200, b'{"ok":true,"result":"%d"}' % i)

    server = run(loop, body)
    assert server.connections == 1
    (first, *_) = server.requests
    assert first.path == f"/bot{TOKEN}/sendMessage"
    assert first.headers["host"] == f"127.0.0.1:{server.port}"
    assert first.headers["content-type"] == "application/json"
    assert first.headers["content-length"] == "1"


@LOOPS
def test_no_more_connections_than_the_limit(loop: eventloop.LoopChoice) -> None:
    async def body(server: Server, wire: BotApiWire) -> None:
        held: list[Request] = []
        server.script = held.append
        calls = [asyncio.create_task(wire.post(server.url(), b"%d" % i, 5)) for i in range(5)]
        await server.wait_for(2)
        await asyncio.sleep(0)  # a turn for any third connection to be asked for
        assert (server.connections, len(server.requests)) == (2, 2)
        server.script = at_once
        for req in held:
            at_once(req)
        results = await asyncio.gather(*calls)
        assert sorted(got for _, got in results) == [
            b'{"ok":true,"result":"%d"}' % i for i in range(5)]

    assert run(loop, body).connections == 2


@LOOPS
def test_a_timed_out_call_closes_its_connection(loop: eventloop.LoopChoice) -> None:
    async def body(server: Server, wire: BotApiWire) -> None:
        held: list[Request] = []
        server.script = held.append
        with pytest.raises(TimeoutError):
            await wire.post(server.url(), b"late", 0.05)
        server.script = at_once
        at_once(held[0])  # a late answer: it must not be read as the next call's
        assert (await wire.post(server.url(), b"next", 5))[1] == b'{"ok":true,"result":"next"}'

    assert run(loop, body).connections == 2


@LOOPS
def test_a_connection_cut_before_the_answer_is_an_error(loop: eventloop.LoopChoice) -> None:
    async def body(server: Server, wire: BotApiWire) -> None:
        server.script = lambda req: req.cut()
        with pytest.raises(ConnectionLost):
            await wire.post(server.url(), b"x", 5)
        server.script = at_once
        assert (await wire.post(server.url(), b"y", 5))[0] == 200

    assert run(loop, body).connections == 2


@LOOPS
def test_connection_close_is_honoured(loop: eventloop.LoopChoice) -> None:
    async def body(server: Server, wire: BotApiWire) -> None:
        server.script = lambda req: req.reply(answer(close=True))
        for _ in range(2):
            assert await wire.post(server.url(), b"x", 5) == (200, OK)

    assert run(loop, body).connections == 2


@LOOPS
def test_a_chunked_answer_in_pieces(loop: eventloop.LoopChoice) -> None:
    def chunked(req: Request) -> None:
        req.reply(b"HTTP/1.1 400 Bad Request\r\nTransfer-Encoding: chunked\r\n\r\n5\r\n{\"ok\"")
        req.reply(b"\r\n7\r\n:false}\r\n0\r\n\r\n")

    async def body(server: Server, wire: BotApiWire) -> None:
        server.script = chunked
        assert await wire.post(server.url(), b"x", 5) == (400, b'{"ok":false}')
        assert await wire.post(server.url(), b"y", 5) == (400, b'{"ok":false}')

    assert run(loop, body).connections == 1


@LOOPS
def test_idle_connections_past_keepalive_are_not_reused(loop: eventloop.LoopChoice) -> None:
    async def body(server: Server, wire: BotApiWire) -> None:
        for _ in range(2):
            await wire.post(server.url(), b"x", 5)

    assert run(loop, body, keepalive=0.0).connections == 2


@LOOPS
def test_a_call_cancelled_in_the_queue_frees_its_place(loop: eventloop.LoopChoice) -> None:
    async def body(server: Server, wire: BotApiWire) -> None:
        held, first, queued = await one_held_one_queued(server, wire)
        queued.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await queued
        server.script = at_once
        held[0].reply(answer())
        assert await first == (200, OK)
        assert (await wire.post(server.url(), b"3", 5))[1] == b'{"ok":true,"result":"3"}'

    server = run(loop, body, limit=1)
    assert server.connections == 1
    assert [r.body for r in server.requests] == [b"1", b"3"]


@LOOPS
def test_session_errors_name_the_fault_not_the_token(loop: eventloop.LoopChoice) -> None:
    async def body(server: Server, wire: BotApiWire) -> None:
        bot = Bot(TOKEN, session=JsonSession(api=TelegramAPIServer.from_base(
            f"http://127.0.0.1:{server.port}")))
        server.script = lambda req: req.cut()
        try:
            with pytest.raises(TelegramNetworkError, match="ConnectionLost") as lost:
                await bot.send_message(chat_id=1, text="x")
            server.script = lambda req: req.reply(
                b"HTTP/1.1 200 OK\r\nContent-Length: zz\r\n\r\n")
            with pytest.raises(TelegramNetworkError, match="HttpParser") as broken:
                await bot.send_message(chat_id=1, text="x")
        finally:
            await bot.session.close()
        for err in (lost, broken):
            assert TOKEN not in str(err.value)

    run(loop, body)


@LOOPS
def test_a_connection_the_server_closed_while_idle_is_not_used(
        loop: eventloop.LoopChoice) -> None:
    async def body(server: Server, wire: BotApiWire) -> None:
        def answer_then_hang_up(req: Request) -> None:
            at_once(req)
            req.cut()
        server.script = answer_then_hang_up
        assert (await wire.post(server.url(), b"1", 5))[1] == b'{"ok":true,"result":"1"}'
        server.script = at_once
        # Until the hang-up reached the wire: loop turns, not time (run's timeout bounds it).
        while wire.connected:  # noqa: ASYNC110 - the wire has no event for it, a count
            await asyncio.sleep(0)
        assert (await wire.post(server.url(), b"2", 5))[1] == b'{"ok":true,"result":"2"}'

    assert run(loop, body).connections == 2


async def _tls_server(ca: trustme.CA) -> tuple[Server, asyncio.Server]:
    srv = Server()
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(context)
    listening = await asyncio.get_running_loop().create_server(
        srv.protocol, "127.0.0.1", 0, ssl=context)
    srv.port = listening.sockets[0].getsockname()[1]
    return srv, listening


@LOOPS
def test_https_verifies_the_server_and_keeps_the_connection(loop: eventloop.LoopChoice) -> None:
    ca = trustme.CA()

    async def main() -> Server:
        srv, listening = await _tls_server(ca)
        url = srv.url().replace("http://", "https://")
        trusting = ssl.create_default_context()
        ca.configure_trust(trusting)
        wire = BotApiWire(limit=2, user_agent="test", tls=trusting)
        default = BotApiWire(limit=2, user_agent="test")  # certifi's CAs: not this test CA
        try:
            for i in range(2):
                assert (await wire.post(url, b"%d" % i, 5))[1] == b'{"ok":true,"result":"%d"}' % i
            with pytest.raises(ssl.SSLCertVerificationError):
                await default.post(url, b"x", 5)
        finally:
            wire.close()
            default.close()
            listening.close()
        return srv

    srv = eventloop.run(main(), loop)
    assert [r.body for r in srv.requests] == [b"0", b"1"]  # the unverified call never went
    assert srv.connections == 2  # one kept alive for both calls, one refused in the handshake


@LOOPS
def test_a_call_waiting_for_a_connection_fails_when_the_wire_closes(
        loop: eventloop.LoopChoice) -> None:
    async def body(server: Server, wire: BotApiWire) -> None:
        _, first, queued = await one_held_one_queued(server, wire)
        wire.close()
        for call in (first, queued):
            with pytest.raises(ConnectionLost):
                await call

    server = run(loop, body, limit=1)
    assert (server.connections, len(server.requests)) == (1, 1)  # none opened after the close
