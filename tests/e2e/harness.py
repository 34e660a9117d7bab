"""The real bot (settings → app → Dispatcher polling) against the two fakes on loopback."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from bot.app import App, build_app
from bot.config import load_settings
from tests.fakes.llm import FakeLLM
from tests.fakes.telegram import FakeTelegram

TOKEN = "42:TEST-TOKEN-abcdefghijklmnopqrstuvwxyz"
API_KEY = "sk-test-secret-key-0123456789"
USER = 1001


@dataclass
class Harness:
    tg: FakeTelegram
    llm: FakeLLM
    app: App

    async def finals(self, chat_id: int, count: int = 1, timeout: float = 10) -> list[str]:
        """Wait until `count` answers' final messages exist in the chat (no cursor left)."""
        def done(calls: list[Any]) -> bool:
            texts = self.tg.texts(chat_id)
            return len(texts) >= count and not any(t.endswith("▌") for t in texts)
        await self.tg.wait_for(done, timeout=timeout)
        await self.idle()
        return self.tg.texts(chat_id)

    async def idle(self, timeout: float = 10) -> None:
        """Wait until no update is being handled and no answer is under way."""
        async with asyncio.timeout(timeout):
            while tasks := self.app.in_flight():
                await asyncio.wait(tasks)


@contextlib.asynccontextmanager
async def polling(app: App, tg: FakeTelegram) -> AsyncIterator[App]:
    """Prepare `app` and run its Dispatcher polling `tg` until the block ends; close the app."""
    try:
        await app.prepare()
        dp = app.dispatcher
        task = asyncio.create_task(dp.start_polling(
            app.bot, handle_signals=False, close_bot_session=False, polling_timeout=1,
            allowed_updates=dp.resolve_used_update_types()))
        try:
            # Polling has started once the first long poll reaches the fake.
            await tg.wait_for(lambda calls: any(c.method == "getUpdates" for c in calls),
                              timeout=10)
            yield app
        finally:
            await dp.stop_polling()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.wait_for(task, 10)
    finally:
        await app.close()


@contextlib.asynccontextmanager
async def running_bot(
    tg: FakeTelegram, llm: FakeLLM, **overrides: Any
) -> AsyncIterator[App]:
    settings = load_settings(**{
        "telegram_bot_token": TOKEN, "telegram_api_url": tg.base_url,
        "openai_base_url": llm.base_url, "openai_api_key": API_KEY, "openai_model": "fake-model",
        "allowed_user_ids": str(USER), "storage_url": "memory://", "http_listen": None,
        **overrides,
    })
    async with polling(await build_app(settings), tg) as app:
        yield app


@contextlib.asynccontextmanager
async def harness(**overrides: Any) -> AsyncIterator[Harness]:
    async with FakeTelegram(token=TOKEN) as tg, FakeLLM() as llm, \
            running_bot(tg, llm, **overrides) as app:
        yield Harness(tg, llm, app)
