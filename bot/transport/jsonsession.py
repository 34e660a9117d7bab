"""aiogram's aiohttp session, sending each Bot API call as one JSON body.

aiogram posts every call as an HTML form: every parameter percent-encoded by
`urllib.parse.quote`, which walks the text byte by byte in Python. A draft carries the whole
answer so far, so its cost grows with the answer: ~150 µs of CPU for a 900-character draft, and
at a thousand streaming chats (~1,300 calls a second) that was a fifth of the bot's CPU. The Bot
API takes `application/json` as well (all but file uploads), which orjson writes in C in a few
microseconds. Calls that upload a file still go as aiogram's multipart form.

Everything else is aiogram's: the same parameter preparation (defaults, enums, nested objects),
the same connection pool, the same errors (`check_response`), and request middlewares run as
before (they wrap `make_request`).
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

from bot.eagerbody import REQUEST_CLASS

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
        session = await self.create_session()
        url = self.api.api_url(token=bot.token, method=method.__api_method__)
        try:
            async with session.post(url, data=body, headers=_JSON,
                                    timeout=self._timeout(timeout)) as resp:
                raw = await resp.text()
        except TimeoutError as e:
            raise TelegramNetworkError(method=method, message="Request timeout error") from e
        except ClientError as e:
            raise TelegramNetworkError(method=method, message=f"{type(e).__name__}: {e}") from e
        response = self.check_response(bot=bot, method=method, status_code=resp.status,
                                       content=raw)
        return cast(TelegramType, response.result)

    def _timeout(self, timeout: float | None) -> ClientTimeout:
        seconds = float(self.timeout if timeout is None else timeout)
        found = self._timeouts.get(seconds)
        if found is None:
            found = self._timeouts[seconds] = ClientTimeout(total=seconds)
        return found
