"""The aiohttp-backed httpx transport against real local servers: bytes, pacing, errors, proxies."""

from __future__ import annotations

import asyncio
import json
import socket
from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest
from aiohttp import web

from bot.llm import AiohttpTransport, ChatRequest, LLMClient, TextDelta
from bot.llm.wire import PACE, _drain
from tests.fakes.llm import FakeLLM
from tests.fakes.serve import LocalServer

REQUEST = ChatRequest(messages=[{"role": "user", "content": "hi"}], model="fake-model")


class Chunks(LocalServer):
    """Writes body chunks when the test says so; can stall, or cut the connection."""

    def __init__(self) -> None:
        super().__init__()
        self.queue: asyncio.Queue[bytes | None] = asyncio.Queue()
        self.written = asyncio.Event()
        self.seen: list[tuple[str, dict[str, str], bytes]] = []

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        self.seen.append((request.method, dict(request.headers), await request.read()))
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        while (chunk := await self.queue.get()) is not None:
            if chunk == b"CUT":
                assert request.transport is not None
                request.transport.close()
                return response
            await response.write(chunk)
            self.written.set()
        await response.write_eof()
        return response


@pytest.fixture
async def server() -> AsyncIterator[Chunks]:
    async with Chunks() as s:
        yield s
        s.queue.put_nowait(None)


@pytest.fixture
async def http() -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(transport=AiohttpTransport(), timeout=5) as client:
        yield client


async def test_streams_an_answer_through_httpx_and_the_llm_client(
    http: httpx.AsyncClient,
) -> None:
    async with FakeLLM(api_key="sk-wire") as llm:
        llm.reply("Hello there, streamed in pieces", chunk_chars=3)
        client = LLMClient(http, llm.base_url, "sk-wire")
        async with client.stream(REQUEST) as events:
            text = "".join([e.text async for e in events if isinstance(e, TextDelta)])
        assert text == "Hello there, streamed in pieces"
        body = llm.requests[-1]
        assert body["model"] == "fake-model" and body["stream"] is True


async def test_request_method_headers_and_body_reach_the_server(
    server: Chunks, http: httpx.AsyncClient,
) -> None:
    server.queue.put_nowait(b"data: x\n\n")
    server.queue.put_nowait(None)
    response = await http.post(f"{server.root_url}/v1/x", json={"a": 1},
                               headers={"Authorization": "Bearer k"})
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/event-stream"
    assert response.text == "data: x\n\n"
    method, headers, body = server.seen[0]
    assert method == "POST" and headers["Authorization"] == "Bearer k"
    assert json.loads(body) == {"a": 1}


async def test_a_paced_read_takes_everything_that_arrived_meanwhile(
    server: Chunks, http: httpx.AsyncClient,
) -> None:
    """While the pace waits, the socket is not read; the next read returns all chunks in one."""
    release = asyncio.Event()
    reads = 0
    reading_while_held: list[bool] = []

    def socket_reading() -> bool:
        body = response.stream._stream  # type: ignore[attr-defined]  # httpx's wrapper
        return bool(body._response.connection.transport.is_reading())

    async def pace() -> None:
        nonlocal reads
        reads += 1
        if reads == 2:  # after the first block: hold until the server wrote three more
            reading_while_held.append(socket_reading())
            await release.wait()
            reading_while_held.append(socket_reading())

    blocks: list[bytes] = []
    async with http.stream("GET", f"{server.root_url}/s", extensions={PACE: pace}) as response:
        server.queue.put_nowait(b"data: 1\n\n")
        stream = response.aiter_raw()
        blocks.append(await anext(stream))
        for n in (2, 3, 4):
            server.written.clear()
            server.queue.put_nowait(f"data: {n}\n\n".encode())
            await asyncio.wait_for(server.written.wait(), 5)
        # `written`: the server's transport has sent it (loopback: it is in our socket now).
        release.set()
        blocks.append(await anext(stream))
        server.queue.put_nowait(None)
        blocks.extend([b async for b in stream])
    assert blocks[0] == b"data: 1\n\n"
    assert blocks[1] == b"data: 2\n\ndata: 3\n\ndata: 4\n\n"
    assert reading_while_held == [False, False]  # the socket was left alone while held


async def test_a_drain_takes_every_buffered_chunk_with_one_flow_control_call() -> None:
    """`_drain` against aiohttp's real StreamReader (the locked version): the bytes and the
    bookkeeping readany would leave, and one resume instead of one per chunk (per token)."""

    class Protocol:  # what a StreamReader calls on its connection's protocol
        resumed = 0

        def resume_reading(self, resume_parser: bool = True) -> None:
            self.resumed += 1

    protocol = Protocol()
    content = aiohttp.StreamReader(protocol, 2**16,  # type: ignore[arg-type]
                                   loop=asyncio.get_running_loop())
    content.begin_http_chunk_receiving()
    chunks = [f"data: {n}\n\n".encode() for n in range(50)]
    for chunk in chunks:
        content.feed_data(chunk)
        content.end_http_chunk_receiving()
    assert _drain(content) == b"".join(chunks)
    assert protocol.resumed == 1
    content.feed_data(b"tail")
    content.end_http_chunk_receiving()
    assert _drain(content) == b""  # a single chunk is readany's, as before
    content.feed_eof()
    assert await content.readany() == b"tail"
    assert await content.readany() == b"" and content.at_eof()
    assert content.total_bytes == len(b"".join(chunks)) + 4


async def test_without_a_pace_reads_come_as_chunks_arrive(
    server: Chunks, http: httpx.AsyncClient,
) -> None:
    async with http.stream("GET", f"{server.root_url}/s") as response:
        stream = response.aiter_raw()
        for n in range(3):
            server.queue.put_nowait(f"data: {n}\n\n".encode())
            assert await asyncio.wait_for(anext(stream), 5) == f"data: {n}\n\n".encode()
        server.queue.put_nowait(None)


async def test_a_refused_connection_is_httpx_connect_error(http: httpx.AsyncClient) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]  # bound, never listening: connections are refused
        with pytest.raises(httpx.ConnectError):
            await http.get(f"http://127.0.0.1:{port}/v1/models")


async def test_a_connection_cut_mid_body_is_a_remote_protocol_error(
    server: Chunks, http: httpx.AsyncClient,
) -> None:
    async with http.stream("GET", f"{server.root_url}/s") as response:
        server.queue.put_nowait(b"data: 1\n\n")
        server.queue.put_nowait(b"CUT")
        with pytest.raises(httpx.RemoteProtocolError):
            async for _ in response.aiter_raw():
                pass


async def test_silence_longer_than_the_read_timeout_is_a_read_timeout(server: Chunks) -> None:
    timeout = httpx.Timeout(5, read=0.2)
    async with (
        httpx.AsyncClient(transport=AiohttpTransport(), timeout=timeout) as http,
        http.stream("GET", f"{server.root_url}/s") as response,
    ):
        server.queue.put_nowait(b"data: 1\n\n")
        with pytest.raises(httpx.ReadTimeout):
            async for _ in response.aiter_raw():
                pass


async def test_leaving_a_stream_early_drops_the_connection(http: httpx.AsyncClient) -> None:
    """That is what tells the provider to stop generating (/stop, shutdown)."""
    async with FakeLLM(tokens_per_second=50) as llm:
        llm.reply("word " * 200, chunk_chars=5)
        client = LLMClient(http, llm.base_url, None)
        async with client.stream(REQUEST) as events:
            async for event in events:
                if isinstance(event, TextDelta):
                    break
        await asyncio.wait_for(llm.disconnected.wait(), 5)
        assert llm.disconnects == 1


async def test_a_finished_stream_leaves_its_connection_for_the_next_request(
    http: httpx.AsyncClient,
) -> None:
    async with FakeLLM() as llm:
        client = LLMClient(http, llm.base_url, None)
        for text in ("one", "two"):
            llm.reply(text)
            async with client.stream(REQUEST) as events:
                assert "".join([e.text async for e in events if isinstance(e, TextDelta)]) == text
        assert llm.disconnects == 0


def test_proxies_come_from_the_environment_once(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("HTTPS_PROXY", "http://proxy.local:3128")
    monkeypatch.setenv("NO_PROXY", "internal.example")
    transport = AiohttpTransport()
    assert transport._proxy(httpx.URL("https://api.openai.com/v1")) == "http://proxy.local:3128"
    assert transport._proxy(httpx.URL("https://internal.example/v1")) is None
    assert transport._proxy(httpx.URL("http://llm.local/v1")) is None  # no HTTP_PROXY set
    monkeypatch.setenv("HTTP_PROXY", "http://other:1")
    assert transport._proxy(httpx.URL("https://api.openai.com/v1")) == "http://proxy.local:3128"


async def test_no_connection_cap_a_hundred_and_twenty_answers_stream_at_once(
    http: httpx.AsyncClient,
) -> None:
    """httpx's default pool (100) made the 101st concurrent answer wait and time out."""
    answers = 120
    async with FakeLLM() as llm:
        llm.stall_after(1, count=answers)  # each stream sends one delta, then holds on
        client = LLMClient(http, llm.base_url, None)
        all_started = asyncio.Event()
        started = 0

        async def one() -> None:
            nonlocal started
            async with client.stream(REQUEST) as events:
                async for event in events:
                    if isinstance(event, TextDelta):
                        break
                started += 1
                if started == answers:
                    all_started.set()
                await all_started.wait()  # every stream is open at this moment

        await asyncio.wait_for(asyncio.gather(*(one() for _ in range(answers))), 10)
        assert started == answers
