"""The baseline policy: the defaults of the best-known open-source streaming consumer
(hermes-agent's gateway/stream_consumer.py), written small so both sides get the same load.

- edit transport everywhere: one sendMessage, then editMessageText with a cursor
- an edit when 0.8 s passed since the last one, or 24 new characters arrived (checked every
  50 ms; the edit is awaited inline, as there)
- a 429 is retried inline after min(retry_after, 5 s): interim edits once, the final up to
  12 times (a minute), so that the final arrives if it can

Not in bot/: this is the thing we measure ourselves against, nothing the bot uses.
"""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator

from aiogram import Bot, Dispatcher, F, Router
from aiogram.exceptions import TelegramBadRequest, TelegramRetryAfter
from aiogram.types import Message

from bot.llm import ChatRequest, LLMClient, TextDelta

EDIT_INTERVAL = 0.8
BUFFER_THRESHOLD = 24
TICK = 0.05
RETRY_CAP = 5.0
INTERIM_ATTEMPTS = 2
FINAL_ATTEMPTS = 12
CURSOR = " ▉"


class BaselineConsumer:
    def __init__(self, bot: Bot, chat_id: int) -> None:
        self._bot = bot
        self._chat_id = chat_id
        self._text = ""
        self._message_id: int | None = None
        self._last_sent = ""
        self._last_len = 0
        self._last_edit = 0.0

    async def run(self, deltas: AsyncIterator[str]) -> None:
        reader = asyncio.create_task(self._read(deltas))
        try:
            while not reader.done():
                await asyncio.sleep(TICK)
                elapsed = time.monotonic() - self._last_edit
                grown = len(self._text) - self._last_len
                due = (elapsed >= EDIT_INTERVAL and self._text != self._last_sent) or (
                    grown >= BUFFER_THRESHOLD)
                if due and self._text:
                    await self._send_or_edit(self._text + CURSOR, INTERIM_ATTEMPTS)
            await reader
            await self._send_or_edit(self._text, FINAL_ATTEMPTS)
        finally:
            reader.cancel()

    async def _read(self, deltas: AsyncIterator[str]) -> None:
        async for delta in deltas:
            self._text += delta

    async def _send_or_edit(self, text: str, attempts: int) -> None:
        self._last_edit = time.monotonic()
        self._last_len = len(self._text)
        for attempt in range(attempts):
            try:
                if self._message_id is None:
                    msg = await self._bot.send_message(self._chat_id, text)
                    self._message_id = msg.message_id
                else:
                    with contextlib.suppress(TelegramBadRequest):  # "message is not modified"
                        await self._bot.edit_message_text(
                            text=text, chat_id=self._chat_id, message_id=self._message_id)
                self._last_sent = text.removesuffix(CURSOR)
                return
            except TelegramRetryAfter as exc:
                if attempt + 1 < attempts:
                    await asyncio.sleep(min(exc.retry_after, RETRY_CAP))


async def _text_deltas(llm: LLMClient, prompt: str) -> AsyncIterator[str]:
    request = ChatRequest(messages=[{"role": "user", "content": prompt}], model="fake-model")
    async with llm.stream(request) as events:
        async for event in events:
            if isinstance(event, TextDelta):
                yield event.text


def baseline_dispatcher(llm: LLMClient) -> Dispatcher:
    router = Router(name=__name__)

    @router.message(F.text)
    async def answer(message: Message, bot: Bot) -> None:
        consumer = BaselineConsumer(bot, message.chat.id)
        await consumer.run(_text_deltas(llm, message.text or ""))

    dp = Dispatcher()
    dp.include_router(router)
    return dp
