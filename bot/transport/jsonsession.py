"""aiogram's aiohttp session, sending each Bot API call as one JSON body on a lean HTTP wire.

aiogram posts every call as an HTML form: every parameter percent-encoded by
`urllib.parse.quote`, which walks the text byte by byte in Python. A draft carries the whole
answer so far, so its cost grows with the answer: ~150 µs of CPU for a 900-character draft, and
at a thousand streaming chats (~1,300 calls a second) that was a fifth of the bot's CPU. The Bot
API takes `application/json` as well (all but file uploads), which orjson writes in C in a few
microseconds. Calls that upload a file still go as aiogram's multipart form.

The JSON bodies go out on `BotApiWire` (botapi_wire.py: one write per call, the answer parsed
by httptools), not through aiohttp's client, which cost three times the CPU per call. File
uploads and a session with a proxy still go through aiohttp.

Everything else is aiogram's: the same parameter preparation (defaults, enums, nested objects),
the same errors (`check_response`), and request middlewares run as before (they wrap
`make_request`).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

import orjson
from aiogram import __version__ as aiogram_version
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.exceptions import TelegramNetworkError
from aiogram.methods.base import TelegramType
from aiohttp import ClientError, ClientSession, ClientTimeout
from aiohttp.hdrs import USER_AGENT
from aiohttp.http import SERVER_SOFTWARE
from httptools import HttpParserError

from bot.eagerbody import REQUEST_CLASS
from bot.transport.botapi_wire import BotApiWire

if TYPE_CHECKING:
    from aiogram import Bot
    from aiogram.methods import TelegramMethod

_JSON = {"Content-Type": "application/json"}
_PLAIN = frozenset({str, int, float, bool})


def _as_is(value: Any) -> bool:
    """Whether aiogram's `prepare_value` would hand `value` back unchanged: plain strings,
    numbers and booleans, and lists and dicts of them without None (which it drops). Exact
    types: enums, defaults, dates and files are left to it. It walks every value of every
    entity of a frame through eight isinstance checks: ~140 µs for a frame of 48 entities."""
    kind = type(value)
    if kind in _PLAIN:
        return True
    if kind is list:
        return all(_as_is(item) for item in value)
    if kind is dict:  # an entity: all its values plain, checked in C
        return _PLAIN.issuperset(map(type, value.values())) or all(
            item is not None and _as_is(item) for item in value.values())
    return False


class JsonSession(AiohttpSession):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("json_loads", orjson.loads)  # answers parsed in C too
        super().__init__(**kwargs)
        self._timeouts: dict[float, ClientTimeout] = {}
        self._wire = BotApiWire(limit=self._connector_init.get("limit", 100),
                                user_agent=f"aiogram/{aiogram_version}")

    async def create_session(self) -> ClientSession:
        # aiogram's own, plus the request class that writes a body at once (eagerbody.py).
        if self._should_reset_connector:
            await self.close()
        if self._session is None or self._session.closed:
            self._session = ClientSession(
                connector=self._connector_type(**self._connector_init),
                headers={USER_AGENT: f"{SERVER_SOFTWARE} aiogram/{aiogram_version}"},
                request_class=REQUEST_CLASS,
            )
            self._should_reset_connector = False
        return self._session

    def json_body(self, bot: Bot, method: TelegramMethod[Any]) -> bytes | None:
        """The call as JSON, or None when it uploads a file (multipart only)."""
        files: dict[str, Any] = {}
        params: dict[str, Any] = {}
        for key, value in method.model_dump(warnings=False, exclude_none=True).items():
            if not _as_is(value):
                value = self.prepare_value(value, bot=bot, files=files, _dumps_json=False)
            # As aiogram's form: unset (None) and empty strings are left out.
            if value is None or value == "":
                continue
            params[key] = value
        if files:
            return None
        return orjson.dumps(params)

    async def make_request(
        self, bot: Bot, method: TelegramMethod[TelegramType], timeout: int | None = None,
    ) -> TelegramType:
        body = self.json_body(bot, method)
        if body is None:
            return await super().make_request(bot, method, timeout)
        url = self.api.api_url(token=bot.token, method=method.__api_method__)
        if self.proxy is not None:
            status, raw = await self._via_aiohttp(method, url, body, timeout)
        else:
            seconds = float(self.timeout if timeout is None else timeout)
            try:
                status, answer = await self._wire.post(url, body, seconds)
            except TimeoutError as e:
                raise TelegramNetworkError(method=method, message="Request timeout error") from e
            except (OSError, HttpParserError) as e:
                raise TelegramNetworkError(
                    method=method, message=f"{type(e).__name__}: {e}") from e
            raw = answer.decode("utf-8", "replace")
        response = self.check_response(bot=bot, method=method, status_code=status, content=raw)
        return cast(TelegramType, response.result)

    async def _via_aiohttp(self, method: TelegramMethod[Any], url: str, body: bytes,
                           timeout: int | None) -> tuple[int, str]:
        session = await self.create_session()
        try:
            async with session.post(url, data=body, headers=_JSON,
                                    timeout=self._timeout(timeout)) as resp:
                return resp.status, await resp.text()
        except TimeoutError as e:
            raise TelegramNetworkError(method=method, message="Request timeout error") from e
        except ClientError as e:
            raise TelegramNetworkError(method=method, message=f"{type(e).__name__}: {e}") from e

    async def close(self) -> None:
        self._wire.close()
        await super().close()

    def _timeout(self, timeout: float | None) -> ClientTimeout:
        seconds = float(self.timeout if timeout is None else timeout)
        found = self._timeouts.get(seconds)
        if found is None:
            found = self._timeouts[seconds] = ClientTimeout(total=seconds)
        return found
