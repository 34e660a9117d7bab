"""Run a fake service as a real HTTP server inside the current event loop.

Both fakes (`FakeTelegram`, `FakeLLM`) are aiohttp.web apps bound to a free port on 127.0.0.1 by
default. The server lives exactly as long as its `async with`; on exit in-flight requests (long
polls, stalled streams) are ended first so teardown never waits for the 60 s aiohttp default.
"""

from __future__ import annotations

import asyncio
import contextlib
import signal
import socket
from collections.abc import Awaitable, Callable
from types import TracebackType
from typing import Self

from aiohttp import web

Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


# A listen backlog like a real server's: aiohttp's default of 128 overflows when a bot opens
# hundreds of connections at once (the 1,000-chat flood benchmark), and every SYN dropped costs
# that connection's first call 1-3 s of TCP retransmission.
BACKLOG = 4096


class LocalServer:
    """Base of the fakes: start/stop an aiohttp app on host:port (port 0 picks a free one)."""

    # How long `stop` lets in-flight requests finish on their own before cancelling them.
    stop_grace: float = 0.5
    # Accept every pending connection each time the listening socket is readable, as busy
    # production servers do. uvloop (libuv) takes one per loop iteration and listener: a fake
    # whose loop is saturated (the 1,000-chat benchmark's) then accepts ~100 connections a
    # second and holds a burst of new model streams for seconds (358 in the accept queue).
    accept_all: bool = False

    def __init__(self, *, host: str = "127.0.0.1", port: int = 0) -> None:
        self.host = host
        self._requested_port = port
        self._port: int | None = None
        self._runner: web.AppRunner | None = None
        self._inflight: set[asyncio.Task[object]] = set()
        self._listener: socket.socket | None = None
        self._accepting: set[asyncio.Task[object]] = set()
        self.closing = False

    def build_app(self) -> web.Application:
        raise NotImplementedError

    async def before_stop(self) -> None:
        """Hook: wake or end long-running handlers (long polls, paused streams)."""

    @property
    def port(self) -> int:
        if self._port is None:
            raise RuntimeError("server is not running")
        return self._port

    @property
    def root_url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "") else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> Self:
        app = self.build_app()
        app.middlewares.insert(0, self._track_middleware)
        # handler_cancellation: a client that hangs up cancels its handler, which is how the
        # fakes notice disconnects while a handler is parked on an event.
        runner = web.AppRunner(
            app, handler_cancellation=True, shutdown_timeout=1.0, access_log=None
        )
        await runner.setup()
        self._runner = runner
        if self.accept_all:
            self._port = self._listen_accepting_all(runner)
        else:
            site = web.TCPSite(runner, self.host, self._requested_port, backlog=BACKLOG)
            await site.start()
            self._port = int(runner.addresses[0][1])
        self.closing = False
        return self

    def _listen_accepting_all(self, runner: web.AppRunner) -> int:
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind((self.host, self._requested_port))
        sock.listen(BACKLOG)
        sock.setblocking(False)
        self._listener = sock
        factory = runner.server
        assert factory is not None
        loop = asyncio.get_running_loop()

        def accept_pending() -> None:
            while True:
                try:
                    conn, _ = sock.accept()
                except (BlockingIOError, InterruptedError):
                    return
                conn.setblocking(False)
                conn.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                task = loop.create_task(loop.connect_accepted_socket(factory, conn))
                self._accepting.add(task)
                task.add_done_callback(self._accepting.discard)

        loop.add_reader(sock.fileno(), accept_pending)
        return int(sock.getsockname()[1])

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is None:
            return
        self.closing = True
        if self._listener is not None:
            asyncio.get_running_loop().remove_reader(self._listener.fileno())
            self._listener.close()
            self._listener = None
        await self.before_stop()
        pending = {t for t in self._inflight if not t.done()}
        if pending:
            _, still = await asyncio.wait(pending, timeout=self.stop_grace)
            for task in still:
                task.cancel()
            if still:
                await asyncio.wait(still, timeout=self.stop_grace)
        await runner.cleanup()

    async def __aenter__(self) -> Self:
        return await self.start()

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.stop()

    def cancel_inflight(self) -> None:
        for task in self._inflight:
            task.cancel()

    @web.middleware
    async def _track_middleware(self, request: web.Request, handler: Handler) -> web.StreamResponse:
        task = asyncio.current_task()
        if task is not None:
            self._inflight.add(task)
        try:
            return await handler(request)
        finally:
            if task is not None:
                self._inflight.discard(task)


async def serve_forever(server: LocalServer) -> None:
    """Run until SIGINT/SIGTERM (standalone mode, e.g. as a docker-compose service)."""
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        with contextlib.suppress(NotImplementedError):
            loop.add_signal_handler(sig, stop.set)
    async with server:
        print(f"{type(server).__name__} listening on {server.host}:{server.port}", flush=True)
        await stop.wait()
