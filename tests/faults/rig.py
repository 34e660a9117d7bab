"""The real bot (settings → build_app → Dispatcher polling) against the two fakes, with known
secrets and every log line captured at DEBUG, so each fault test is also a secret scan."""

from __future__ import annotations

import asyncio
import contextlib
import io
import itertools
import json
import logging
import socket
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from typing import Any

import structlog
from aiohttp import web

from bot.app import App, build_app
from bot.config import load_settings
from bot.logs import setup_logging
from tests.e2e.harness import polling
from tests.fakes.llm import FakeLLM
from tests.fakes.telegram import FakeTelegram

# Known secrets: no output of any test may contain them. The bot id has four digits on purpose:
# the token-shaped regex in bot.logs needs five, so only the explicit redaction can hide it.
TOKEN = "4242:SECRET-bot-token-faults-0123456789abcd"
API_KEY = "sk-faults-SECRET-api-key-9876543210"
WEBHOOK_SECRET = "whsec-faults-SECRET-42"
SECRETS = (TOKEN, TOKEN.split(":", 1)[1], API_KEY, WEBHOOK_SECRET)
USER = 1001
OTHER = 1002
GROUP = -500
BOT_USERNAME = "testbot"

# Small values so that waits caused by the faults stay short; tests never sleep themselves.
FAST = {
    "llm_idle_timeout": 5,  # tests of the idle timeout itself set 0.5
    "llm_connect_timeout": 0.3,
    "llm_max_retries": 1,
    "llm_total_timeout": 10,
    "limit_chat_per_second": 20,
    "limit_chat_burst": 10,
    "limit_group_per_minute": 600,
    "stream_min_interval": 0.05,
    "shutdown_grace": 0.5,
}


def leaked(text: str) -> list[str]:
    """The secrets that appear in `text` (an empty list is the only acceptable answer)."""
    return [s for s in SECRETS if s in text]


def closed_port() -> int:
    """A loopback port nothing listens on (connections to it are refused)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def unaccepting_port() -> Iterator[int]:
    """A loopback port whose accept queue is full: connecting to it hangs (connect timeout)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(0)
    port = int(server.getsockname()[1])
    fillers = []
    for _ in range(3):
        c = socket.socket()
        c.setblocking(False)
        with contextlib.suppress(BlockingIOError):
            c.connect(("127.0.0.1", port))
        fillers.append(c)
    try:
        yield port
    finally:
        for c in fillers:
            c.close()
        server.close()


class StampedLLM(FakeLLM):
    """FakeLLM that also records when each completion request arrived (loop time)."""

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.arrivals: list[float] = []

    def build_app(self) -> web.Application:
        app = super().build_app()

        @web.middleware
        async def stamp(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.path.endswith("/chat/completions"):
                self.arrivals.append(asyncio.get_running_loop().time())
            response: web.StreamResponse = await handler(request)
            return response

        app.middlewares.append(stamp)
        return app

    def gaps(self) -> list[float]:
        """Seconds between consecutive completion requests (the backoff actually waited)."""
        return [b - a for a, b in itertools.pairwise(self.arrivals)]


class LogCapture:
    """Everything the bot logs (structlog and stdlib, DEBUG and up), as the JSON lines it writes."""

    def __init__(self) -> None:
        self.buffer = io.StringIO()

    @property
    def text(self) -> str:
        return self.buffer.getvalue()

    def events(self, name: str | None = None) -> list[dict[str, Any]]:
        out = []
        for line in self.text.splitlines():
            with contextlib.suppress(ValueError):
                record = json.loads(line)
                if name is None or record.get("event") == name:
                    out.append(record)
        return out


@contextlib.contextmanager
def captured_logs(level: str = "DEBUG") -> Iterator[LogCapture]:
    root = logging.getLogger()
    saved = (root.handlers[:], root.level)
    quieted = ("httpx", "aiogram.event", "markdown_it")  # setup_logging sets these
    named = {n: logging.getLogger(n).level for n in quieted}
    capture = LogCapture()
    setup_logging(level, "json", [TOKEN, API_KEY, WEBHOOK_SECRET], stream=capture.buffer)
    try:
        yield capture
    finally:
        root.handlers[:], root.level = saved
        for name, lvl in named.items():
            logging.getLogger(name).setLevel(lvl)
        structlog.reset_defaults()


@dataclass
class Rig:
    tg: FakeTelegram
    llm: StampedLLM
    app: App
    logs: LogCapture

    async def idle(self, timeout: float = 10) -> None:
        """Wait until no update is being handled and no answer is under way."""
        async with asyncio.timeout(timeout):
            while tasks := self.app.in_flight():
                await asyncio.wait(tasks)

    async def finals(self, chat_id: int, count: int = 1, timeout: float = 10) -> list[str]:
        """Wait until the chat holds `count` bot messages, none with a streaming cursor."""
        def done(_calls: Any) -> bool:
            texts = self.tg.texts(chat_id)
            return len(texts) >= count and not any(t.endswith("▌") for t in texts)

        await self.tg.wait_for(done, timeout=timeout)
        await self.idle()
        return self.tg.texts(chat_id)

    async def drafted(self, chat_id: int, needle: str, timeout: float = 10) -> None:
        """Wait until a draft showing `needle` reached the chat."""
        await self.tg.wait_for(lambda calls: any(
            c.ok and c.method == "sendMessageDraft" and c.params.get("chat_id") == chat_id
            and needle in c.params.get("text", "") for c in calls), timeout=timeout)

    async def sentinel(self, chat_id: int = USER) -> list[str]:
        """Send one ordinary message after the updates under test and wait for its answer and
        for every handler to finish: whatever the earlier updates caused has happened by then."""
        before = len(self.tg.texts(chat_id))
        self.llm.reply("sentinel answer")
        self.tg.private_text(chat_id, "sentinel question")
        await self.finals(chat_id, before + 1)
        return self.tg.texts(chat_id)

    def sent_texts(self, chat_id: int) -> list[str]:
        return [str(c.params.get("text", "")) for c in self.tg.calls_to("sendMessage")
                if c.ok and c.params.get("chat_id") == chat_id]

    def all_output(self) -> str:
        """Logs, every Bot API call the bot made (what it sent), every request body to the LLM."""
        calls = [{"method": c.method, "params": c.params} for c in self.tg.calls]
        return "\n".join([self.logs.text, json.dumps(calls, ensure_ascii=False, default=str),
                          json.dumps(self.llm.requests, ensure_ascii=False, default=str)])


def settings_for(tg: FakeTelegram, llm_url: str, **overrides: Any) -> dict[str, Any]:
    return {
        "telegram_bot_token": TOKEN, "telegram_api_url": tg.base_url,
        "openai_base_url": llm_url, "openai_api_key": API_KEY, "openai_model": "fake-model",
        "allowed_user_ids": f"{USER},{OTHER}", "allowed_chat_ids": str(GROUP),
        "storage_url": "memory://", "http_listen": None, "webhook_secret": WEBHOOK_SECRET,
        **FAST, **overrides,
    }


@contextlib.asynccontextmanager
async def running(tg: FakeTelegram, llm_url: str, **overrides: Any) -> AsyncIterator[App]:
    app = await build_app(load_settings(**settings_for(tg, llm_url, **overrides)))
    async with polling(app, tg):
        yield app


@contextlib.asynccontextmanager
async def rig(*, llm_url: str | None = None, log_level: str = "DEBUG",
              **overrides: Any) -> AsyncIterator[Rig]:
    """The bot against both fakes; on exit, asserts that no secret reached any output."""
    with captured_logs(log_level) as logs:
        async with FakeTelegram(token=TOKEN, username=BOT_USERNAME) as tg, \
                StampedLLM(api_key=API_KEY) as llm, \
                running(tg, llm_url or llm.base_url, **overrides) as app:
            r = Rig(tg, llm, app, logs)
            yield r
        output = r.all_output()
    assert not leaked(output), f"secrets leaked: {leaked(output)}"
