"""The real runner (ops HTTP server, polling or webhook, graceful stop) against the fakes."""

from __future__ import annotations

import asyncio
import contextlib
import socket
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import aiohttp

from bot.app import App, build_app
from bot.config import load_settings
from bot.runner import Runner
from tests.e2e.harness import API_KEY, TOKEN, USER
from tests.fakes.llm import FakeLLM
from tests.fakes.telegram import FakeTelegram

__all__ = ["SECRET", "TOKEN", "USER", "Running", "free_port", "running"]

SECRET = "webhook-secret-0123456789"


@dataclass
class Running:
    app: App
    runner: Runner
    stop: asyncio.Event
    task: asyncio.Task[None]

    def url(self, role: str, path: str) -> str:
        return self.runner.listeners[role].url + path

    async def get(self, path: str) -> tuple[int, str]:
        async with aiohttp.ClientSession() as http, http.get(self.url("ops", path)) as r:
            return r.status, await r.text()


def free_port() -> int:
    """A port for a listener whose address must be known before it starts (WEBHOOK_URL)."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.asynccontextmanager
async def running(tg: FakeTelegram, llm: FakeLLM, **overrides: Any) -> AsyncIterator[Running]:
    settings = load_settings(**{
        "telegram_bot_token": TOKEN, "telegram_api_url": tg.base_url,
        "openai_base_url": llm.base_url, "openai_api_key": API_KEY, "openai_model": "fake-model",
        "allowed_user_ids": str(USER), "storage_url": "memory://",
        "http_listen": "127.0.0.1:0", "shutdown_grace": 5,
        **overrides,
    })
    app = await build_app(settings)
    runner = Runner(app)
    stop = asyncio.Event()
    task = asyncio.create_task(runner.run(stop))
    try:
        ready = asyncio.create_task(runner.ready.wait())
        await asyncio.wait({ready, task}, timeout=10, return_when=asyncio.FIRST_COMPLETED)
        ready.cancel()
        if task.done():
            task.result()  # start-up failed: raise its error here
        assert runner.ready.is_set(), "runner not ready within 10 s"
        yield Running(app, runner, stop, task)
    finally:
        stop.set()
        try:
            await asyncio.wait_for(task, 30)
        finally:
            await app.close()
