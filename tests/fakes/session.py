"""A recording aiogram session: the Bot API boundary for in-process unit tests.

Answers like Telegram (real JSON through aiogram's own `check_response`, so errors become the
real exception types), records every call, and can fail or hold chosen calls.
"""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncGenerator, Callable
from dataclasses import dataclass
from typing import Any

from aiogram import Bot
from aiogram.client.session.base import BaseSession
from aiogram.methods import TelegramMethod
from aiogram.methods.base import TelegramType


@dataclass
class Recorded:
    method: str
    params: dict[str, Any]
    at: float
    ok: bool = True


Failure = tuple[int, str, int | None]  # status, description, retry_after


class RecordingSession(BaseSession):
    def __init__(self, clock: Callable[[], float] | None = None) -> None:
        super().__init__()
        self.calls: list[Recorded] = []
        self._clock = clock or time.monotonic
        self._next_id: dict[int, int] = {}
        self.texts: dict[tuple[int, int], str] = {}
        self.failures: dict[str, list[Failure]] = {}
        self.always_fail: dict[str, Failure] = {}
        self.hold: dict[str, asyncio.Event] = {}
        self.changed = asyncio.Event()

    def fail(self, method: str, status: int, description: str,
             retry_after: int | None = None, times: int = 1) -> None:
        self.failures.setdefault(method, []).extend([(status, description, retry_after)] * times)

    def of(self, method: str) -> list[Recorded]:
        return [c for c in self.calls if c.method == method and c.ok]

    def names(self) -> list[str]:
        return [c.method for c in self.calls]

    async def close(self) -> None:
        return None

    async def stream_content(self, *args: Any, **kwargs: Any) -> AsyncGenerator[bytes, None]:
        raise NotImplementedError
        yield b""  # pragma: no cover

    def _result(self, name: str, p: dict[str, Any]) -> Any:
        chat_id = p.get("chat_id", 0)
        if name == "sendMessage":
            mid = self._next_id.get(chat_id, 0) + 1
            self._next_id[chat_id] = mid
            self.texts[(chat_id, mid)] = p["text"]
            return self._message(chat_id, mid, p)
        if name == "editMessageText":
            key = (chat_id, p["message_id"])
            if key not in self.texts:
                return (400, "Bad Request: message to edit not found", None)
            if self.texts[key] == p["text"]:
                return (400, "Bad Request: message is not modified: specified new message "
                        "content and reply markup are exactly the same", None)
            self.texts[key] = p["text"]
            return self._message(chat_id, p["message_id"], p)
        if name == "getMe":
            return {"id": 42, "is_bot": True, "first_name": "Test", "username": "testbot"}
        return True

    @staticmethod
    def _message(chat_id: int, mid: int, p: dict[str, Any]) -> dict[str, Any]:
        chat = {"id": chat_id, "type": "private" if chat_id > 0 else "supergroup"}
        return {"message_id": mid, "date": 0, "chat": chat, "text": p["text"],
                "from": {"id": 42, "is_bot": True, "first_name": "Test"}}

    def _params(self, bot: Bot, method: TelegramMethod[Any]) -> dict[str, Any]:
        # The same value preparation aiogram applies before the wire (defaults resolved).
        out: dict[str, Any] = {}
        for key, value in method.model_dump(warnings=False).items():
            prepared = self.prepare_value(value, bot=bot, files={})
            if prepared is None:
                continue
            if isinstance(prepared, str) and prepared[:1] in ("[", "{"):
                prepared = json.loads(prepared)
            elif isinstance(prepared, str) and prepared.lstrip("-").isdigit():
                prepared = int(prepared)
            out[key] = prepared
        return out

    async def make_request(
        self, bot: Bot, method: TelegramMethod[TelegramType], timeout: int | None = None
    ) -> TelegramType:
        name = method.__api_method__
        params = self._params(bot, method)
        gate = self.hold.get(name)
        if gate is not None:
            await gate.wait()
        record = Recorded(name, params, self._clock())
        self.calls.append(record)
        self.changed.set()
        queued = self.failures.get(name)
        failure = queued.pop(0) if queued else self.always_fail.get(name)
        result = failure or self._result(name, params)
        if isinstance(result, tuple):
            status, description, retry_after = result
            record.ok = False
            body: dict[str, Any] = {"ok": False, "error_code": status, "description": description}
            if retry_after is not None:
                body["parameters"] = {"retry_after": retry_after}
            response = self.check_response(bot, method, status, json.dumps(body))
        else:
            response = self.check_response(
                bot, method, 200, json.dumps({"ok": True, "result": result}))
        return response.result  # type: ignore[return-value]
