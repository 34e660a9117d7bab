"""Bot API calls as HTTP/1.1 requests on kept-alive connections, without aiohttp's client.

Why: a Bot API call is one small JSON POST and one small JSON answer, and at a thousand
streaming chats the bot makes ~1,300 of them a second. aiohttp's client wraps each in a
`ClientRequest`, a `ClientResponse`, header multidicts, a timer context, traces and a body
payload: 73 µs of CPU per call against a local server, against 20 µs for this module, which
writes the request in one `write` and reads the answer with httptools (llhttp in C, the parser
uvicorn uses). In the 1,000-chat benchmark's profile aiohttp's part of the Bot API calls was
14 % of the bot's samples (`bench/RESULTS.md`).

What it does not do, because the Bot API does not need it: redirects, proxies (JsonSession goes
through aiohttp when one is set), compression (no `Accept-Encoding` is sent, so none comes
back), cookies, and answers that end only when the connection closes (Telegram's carry a
`Content-Length`; such an answer is a network error here).

A connection with a call whose fate is unknown (timed out, cancelled, broken answer) is closed,
never reused: a late answer must not be read as the next call's. Idle connections are dropped
after `keepalive` seconds, before the server drops them under a call.
"""

from __future__ import annotations

import asyncio
import ssl
from collections import deque
from typing import cast
from urllib.parse import urlsplit

import certifi
import httptools

KEEPALIVE = 15.0  # seconds an idle connection is kept (aiohttp's default too)


class ConnectionLost(ConnectionError):
    """The server closed the connection before it answered the call."""


class _Connection(asyncio.Protocol):
    def __init__(self, origin: _Origin) -> None:
        self._origin = origin
        self._parser = httptools.HttpResponseParser(self)
        self._transport: asyncio.Transport | None = None
        self._waiter: asyncio.Future[tuple[int, bytes]] | None = None
        self._body: list[bytes] = []
        self.closed = False
        self.idle_since = 0.0

    # -- asyncio.Protocol
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # A cast, not an isinstance check: uvloop's transports do not subclass asyncio's.
        self._transport = cast(asyncio.Transport, transport)
        self._origin.made(self)

    def data_received(self, data: bytes) -> None:
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserError as exc:
            self._fail(exc)
            self.close()

    def eof_received(self) -> bool | None:
        # The server is done with this connection: no call may take it between now and
        # `connection_lost`, a loop turn later.
        self.closed = True
        return None  # the transport closes

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        self._fail(ConnectionLost("the Bot API server closed the connection"))
        self._origin.lost(self)

    # -- httptools callbacks
    def on_body(self, body: bytes) -> None:
        self._body.append(body)

    def on_message_complete(self) -> None:
        waiter, self._waiter = self._waiter, None
        body = b"".join(self._body)
        self._body.clear()
        if waiter is None or waiter.done():
            self.close()  # an answer nobody asked for: the stream is out of step
            return
        waiter.set_result((self._parser.get_status_code(), body))
        if not self._parser.should_keep_alive():
            self.close()

    # --
    def _fail(self, exc: BaseException) -> None:
        waiter, self._waiter = self._waiter, None
        if waiter is not None and not waiter.done():
            waiter.set_exception(exc)

    def close(self) -> None:
        self.closed = True
        if self._transport is not None:
            self._transport.close()

    async def call(self, data: bytes, timeout: float) -> tuple[int, bytes]:
        assert self._transport is not None
        loop = self._origin.loop
        waiter: asyncio.Future[tuple[int, bytes]] = loop.create_future()
        self._waiter = waiter
        self._transport.write(data)
        timer = loop.call_at(loop.time() + timeout, _time_out, waiter)
        try:
            return await waiter
        except BaseException:
            self.close()  # timed out, cancelled or broken: its state is unknown
            raise
        finally:
            timer.cancel()


def _time_out(waiter: asyncio.Future[tuple[int, bytes]]) -> None:
    if not waiter.done():
        waiter.set_exception(TimeoutError())


class _Origin:
    """The connections to one scheme://host:port, at most `limit` open or opening."""

    def __init__(self, scheme: str, host: str, port: int, *, limit: int, keepalive: float,
                 tls: ssl.SSLContext | None) -> None:
        self.loop = asyncio.get_running_loop()
        self._host, self._port = host, port
        self._ssl: ssl.SSLContext | None = None
        if scheme == "https":
            self._ssl = tls or ssl.create_default_context(cafile=certifi.where())
        self._limit, self._keepalive = limit, keepalive
        self._free: deque[_Connection] = deque()  # idle, the most recently used last
        self._open = 0  # connections open or opening
        self._waiters: deque[asyncio.Future[_Connection | None]] = deque()
        self._all: set[_Connection] = set()  # connected and not yet lost
        self._closed = False

    async def acquire(self, timeout: float) -> _Connection:
        now = self.loop.time()
        while self._free:
            conn = self._free.pop()
            if not conn.closed and now - conn.idle_since < self._keepalive:
                return conn
            conn.close()
        async with asyncio.timeout(timeout):
            while not self._closed and self._open >= self._limit:
                # Handed a connection, or None once a slot is free to open one.
                waiter: asyncio.Future[_Connection | None] = self.loop.create_future()
                self._waiters.append(waiter)
                try:
                    conn_or_slot = await waiter
                except BaseException:
                    if waiter.done() and not waiter.cancelled():
                        self._pass_on(waiter.result())
                    raise
                if conn_or_slot is not None and not conn_or_slot.closed:
                    return conn_or_slot
                # A slot, or a connection the server hung up on meanwhile (its slot frees
                # when it is lost): look again.
            if self._closed:
                raise ConnectionLost("the Bot API session is closed")
            self._open += 1
            conn = _Connection(self)
            try:
                await self.loop.create_connection(
                    lambda: conn, self._host, self._port, ssl=self._ssl,
                    server_hostname=self._host if self._ssl else None)
            except BaseException:
                if conn in self._all:
                    conn.close()  # it did connect: its `connection_lost` frees the slot
                else:
                    self._open -= 1
                    self._pass_on(None)
                raise
        return conn

    def made(self, conn: _Connection) -> None:
        self._all.add(conn)

    def release(self, conn: _Connection) -> None:
        if conn.closed:
            return  # its slot frees when it is lost
        conn.idle_since = self.loop.time()
        self._pass_on(conn)

    def _pass_on(self, conn: _Connection | None) -> None:
        """A connection (or, with None, a free slot) goes to the first caller still waiting."""
        while self._waiters:
            waiter = self._waiters.popleft()
            if not waiter.done():
                waiter.set_result(conn)
                return
        if conn is not None:
            self._free.append(conn)

    def lost(self, conn: _Connection) -> None:
        if conn in self._all:
            self._all.discard(conn)
            self._open -= 1
            self._pass_on(None)

    def close(self) -> None:
        # Calls waiting for a connection wake to a closed origin and fail; none opens another.
        self._closed = True
        for conn in list(self._all):
            conn.close()
        self._free.clear()
        for waiter in self._waiters:
            if not waiter.done():
                waiter.set_result(None)
        self._waiters.clear()

    @property
    def connected(self) -> int:
        return len(self._all)


class BotApiWire:
    """POSTs of JSON bodies to Bot API URLs, on at most `limit` connections per server."""

    def __init__(self, *, limit: int, user_agent: str, keepalive: float = KEEPALIVE,
                 tls: ssl.SSLContext | None = None) -> None:
        # tls: the context for https servers; certifi's CA bundle (aiogram's too) by default.
        self._limit, self._keepalive, self._tls = limit, keepalive, tls
        self._agent = user_agent
        self._origins: dict[tuple[str, str, int], _Origin] = {}
        # url -> (origin key, request head up to the body's length). The URL holds the bot's
        # token: it goes on the wire and nowhere else (no error message quotes it).
        self._heads: dict[str, tuple[tuple[str, str, int], bytes]] = {}

    def _head(self, url: str) -> tuple[tuple[str, str, int], bytes]:
        found = self._heads.get(url)
        if found is None:
            parts = urlsplit(url)
            scheme, host = parts.scheme, parts.hostname or ""
            port = parts.port or (443 if scheme == "https" else 80)
            authority = parts.netloc.rpartition("@")[2]
            path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
            head = (f"POST {path} HTTP/1.1\r\nHost: {authority}\r\nUser-Agent: {self._agent}\r\n"
                    "Content-Type: application/json\r\nContent-Length: ").encode()
            found = self._heads[url] = ((scheme, host, port), head)
        return found

    async def post(self, url: str, body: bytes, timeout: float) -> tuple[int, bytes]:
        """(status, body) of the answer. Raises TimeoutError past `timeout` seconds in all,
        OSError (ConnectionLost among them) and httptools.HttpParserError."""
        key, head = self._head(url)
        origin = self._origins.get(key)
        if origin is None:
            origin = self._origins[key] = _Origin(*key, limit=self._limit,
                                                  keepalive=self._keepalive, tls=self._tls)
        start = origin.loop.time()
        conn = await origin.acquire(timeout)
        try:
            left = timeout - (origin.loop.time() - start)
            answer = await conn.call(b"%s%d\r\n\r\n%s" % (head, len(body), body), left)
        finally:
            origin.release(conn)
        return answer

    @property
    def connected(self) -> int:
        """Connections made and not yet lost, to every server."""
        return sum(origin.connected for origin in self._origins.values())

    def close(self) -> None:
        for origin in self._origins.values():
            origin.close()
        self._origins.clear()
