"""An httpx transport over aiohttp: the model's byte stream parsed in C, read at a pace we choose.

Why not httpx's own transport: a streamed answer is one small HTTP chunk per token, and
httpcore parses each one in Python (h11) through seven async-generator layers: ~45 µs of CPU
per token. A thousand answers at 40 tokens/s are 40,000 tokens a second, more than one core.
aiohttp parses HTTP in C (llhttp) and hands over everything buffered in one read.

Pacing: a request may carry a `PACE` extension, an async callable awaited before each read of
the body. While it waits, the socket is not read at all (the transport is paused), so the
tokens pile up in the kernel and the next read takes them all at once: one wake-up and one
parse for many tokens instead of one per token. httpx, httpx-sse and the client above see an
ordinary `httpx.Response`; a request without `PACE` is read as eagerly as httpx would.

A paced read drains every buffered chunk at once (`_drain`): aiohttp's own `readany` hands
back the same bytes but resumes its parser once per HTTP chunk, i.e. once per token.

aiohttp errors are re-raised as the httpx errors httpx's own transport raises for the same
fault, so `errors.translated` and everything above stay transport-agnostic.
"""

from __future__ import annotations

import asyncio
import contextlib
import urllib.request
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator

import aiohttp
import httpx

from bot.eagerbody import REQUEST_CLASS

PACE = "bot.pace"  # request extension: `async () -> None`, awaited before each body read

Pace = Callable[[], Awaitable[None]]


@contextlib.contextmanager
def _as_httpx_errors(request: httpx.Request) -> Iterator[None]:
    # Most specific first: the timeout classes subclass the connection ones.
    try:
        yield
    except aiohttp.ConnectionTimeoutError as exc:
        raise httpx.ConnectTimeout(type(exc).__name__, request=request) from exc
    except aiohttp.SocketTimeoutError as exc:
        raise httpx.ReadTimeout(type(exc).__name__, request=request) from exc
    except (aiohttp.ServerTimeoutError, TimeoutError) as exc:
        raise httpx.TimeoutException(type(exc).__name__, request=request) from exc
    except aiohttp.ClientConnectorError as exc:
        raise httpx.ConnectError(type(exc).__name__, request=request) from exc
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientPayloadError,
            aiohttp.ClientResponseError) as exc:
        # What httpcore calls a peer closing early or breaking the HTTP framing.
        raise httpx.RemoteProtocolError(type(exc).__name__, request=request) from exc
    except aiohttp.InvalidURL as exc:
        raise httpx.InvalidURL(type(exc).__name__) from exc
    except (aiohttp.ClientError, OSError) as exc:
        raise httpx.ReadError(type(exc).__name__, request=request) from exc


def _drain(content: aiohttp.StreamReader) -> bytes:
    """Every chunk `content` holds, as one bytes; b"" (leaving it to `readany`) when it holds
    fewer than two, or has an error to raise.

    The same bytes and bookkeeping as `readany`, with one flow-control call instead of one per
    chunk: aiohttp's `_read_nowait_chunk` resumes the protocol (and feeds its parser an empty
    read) after every chunk, and a paced read of a model stream holds one chunk per token; at
    40,000 tokens a second that alone was several per cent of a core. Private attributes of
    aiohttp's StreamReader (slots, checked by tests/unit/test_wire.py against the locked
    version); without them this returns b"" and `readany` does the work, as before.
    """
    try:  # every attribute read before anything changes: missing ones leave it untouched
        buffer, splits = content._buffer, content._http_chunk_splits
        size, cursor = content._size, content._cursor
        low_water, low_water_chunks = content._low_water, content._low_water_chunks
        protocol, timer = content._protocol, content._timer
        if len(buffer) < 2 or content._buffer_offset or content._exception is not None:
            return b""
    except AttributeError:
        return b""
    timer.assert_timeout()
    data = b"".join(buffer)
    buffer.clear()
    content._size = size = size - len(data)
    content._cursor = cursor = cursor + len(data)
    while splits and splits[0] < cursor:
        splits.popleft()
    if size < low_water and (splits is None or len(splits) < low_water_chunks):
        protocol.resume_reading()
    return data


async def _read(content: aiohttp.StreamReader) -> bytes:
    """What `content.readany()` returns, drained in one go (`_drain`) wherever it can be."""
    if data := _drain(content):
        return data
    wait = getattr(content, "_wait", None)  # readany's own wait: the same read timeout
    if wait is not None and not content._buffer and not content.is_eof() and (
        content.exception() is None
    ):
        # Woken by the first chunk that arrives, after the whole network read is parsed: a
        # paced read's tokens are all in the buffer by then.
        await wait("readany")
        if data := _drain(content):
            return data
    return await content.readany()


class _Body(httpx.AsyncByteStream):
    def __init__(self, request: httpx.Request, response: aiohttp.ClientResponse,
                 pace: Pace | None) -> None:
        self._request = request
        self._response = response
        self._pace = pace

    async def __aiter__(self) -> AsyncIterator[bytes]:
        content = self._response.content
        while True:
            if self._pace is not None and not content.is_eof():
                await self._paced(self._pace)
            with _as_httpx_errors(self._request):
                data = await _read(content)
            if not data:
                return
            yield data

    async def _paced(self, pace: Pace) -> None:
        connection = self._response.connection
        transport = connection.transport if connection is not None else None
        if transport is None or transport.is_closing():
            await pace()
            return
        transport.pause_reading()
        try:
            await pace()
        finally:
            if not transport.is_closing():
                transport.resume_reading()

    async def aclose(self) -> None:
        # Read to the end: the connection goes back to the pool. Closed early (stop, error):
        # the connection is dropped, which is what tells the provider to stop generating.
        if self._response.content.is_eof():
            self._response.release()
        else:
            self._response.close()


class AiohttpTransport(httpx.AsyncBaseTransport):
    """HTTP/1.1 over one `aiohttp.ClientSession`, made on first use inside the running loop.

    No connection cap (one connection per answer streaming); proxies from the environment
    (`HTTPS_PROXY`, `NO_PROXY`, …) read once, as httpx does; certificates from certifi, as
    httpx does.
    """

    def __init__(self, *, keepalive: float = 5.0) -> None:
        self._keepalive = keepalive
        self._session: aiohttp.ClientSession | None = None
        self._ssl = httpx.create_ssl_context()  # reads certifi's bundle: ~40 ms, once, now
        # aiohttp's own trust_env re-reads the environment and ~/.netrc in a thread on every
        # request: a tenth of the CPU with a thousand answers starting at once.
        self._env_proxies = urllib.request.getproxies_environment()
        self._proxy_for: dict[tuple[str, str], str | None] = {}

    def _proxy(self, url: httpx.URL) -> str | None:
        key = (url.scheme, url.host)
        if key not in self._proxy_for:
            bypass = urllib.request.proxy_bypass_environment(  # type: ignore[attr-defined]
                url.host, self._env_proxies)
            self._proxy_for[key] = None if bypass else self._env_proxies.get(url.scheme)
        return self._proxy_for[key]

    def _get_session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            connector = aiohttp.TCPConnector(limit=0, keepalive_timeout=self._keepalive,
                                             ssl=self._ssl)
            # httpx decodes gzip itself and sends its own Accept/User-Agent headers.
            # On Python 3.11 the request's body leaves with its headers (bot/eagerbody.py).
            self._session = aiohttp.ClientSession(connector=connector, auto_decompress=False,
                                                  request_class=REQUEST_CLASS)
        return self._session

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        timeouts = request.extensions.get("timeout", {})
        pace = request.extensions.get(PACE)
        body = await request.aread()
        with _as_httpx_errors(request):
            response = await self._get_session().request(
                request.method, str(request.url), headers=request.headers.multi_items(),
                data=body or None, allow_redirects=False, proxy=self._proxy(request.url),
                timeout=aiohttp.ClientTimeout(
                    total=None, connect=timeouts.get("pool"),
                    sock_connect=timeouts.get("connect"), sock_read=timeouts.get("read")),
            )
        return httpx.Response(
            status_code=response.status,
            headers=[(bytes(k), bytes(v)) for k, v in response.raw_headers],
            stream=_Body(request, response, pace),
            request=request,
            extensions={"http_version": b"HTTP/1.1",
                        "reason_phrase": (response.reason or "").encode()},
        )

    async def aclose(self) -> None:
        if self._session is not None:
            await self._session.close()
            # aiohttp closes sockets on the next loop turn; let it, so nothing is left open.
            await asyncio.sleep(0)
