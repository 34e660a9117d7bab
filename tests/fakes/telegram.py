"""A fake Telegram Bot API server (aiohttp.web) for end-to-end tests and benchmarks.

Faithful where a streaming bot can go wrong: UTF-16 lengths and entity offsets, text trimmed
like Telegram does, "message is not modified", drafts only in private chats, 429 with
`retry_after` and the flood window after it, long polling woken by pushed updates. The rest
answers plausibly. Every call is recorded as a `Call`.

    async with FakeTelegram(token="42:TEST") as tg:
        bot = Bot(tg.token, session=AiohttpSession(api=TelegramAPIServer.from_base(tg.base_url)))
        tg.private_text(7, "hi")
        await tg.wait_for(lambda calls: any(c.method == "sendMessage" for c in calls))
"""

from __future__ import annotations

import asyncio
import contextlib
import inspect
import itertools
import json
import math
import re
import time
from collections import deque
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import aiohttp
from aiohttp import web

from tests.fakes.serve import LocalServer

MAX_TEXT = 4096  # UTF-16 code units
MAX_CALLBACK_DATA = 64  # bytes
NOT_MODIFIED = (
    "Bad Request: message is not modified: specified new message content and reply markup are "
    "exactly the same as a current content and reply markup of the message"
)
JsonDict = dict[str, Any]
# Delivered when allowed_updates is empty/unset: all but these three opt-in kinds.
_OPT_IN_UPDATES = frozenset({"chat_member", "message_reaction", "message_reaction_count"})
OnCall = Callable[[str, JsonDict], Awaitable[web.Response | None] | web.Response | None]

# Form values aiogram sends verbatim (everything else is JSON-encoded: ints, bools, objects).
_STRING_PARAMS = frozenset(
    {
        "text", "parse_mode", "caption", "callback_query_id", "url", "secret_token", "action",
        "inline_message_id", "business_connection_id", "language_code", "ip_address",
        "description", "short_description", "name", "title", "custom_emoji_id", "query",
    }
)  # fmt: skip


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


@dataclass(frozen=True)
class Call:
    method: str
    params: JsonDict
    at: float  # the fake's clock (loop time by default) when the request arrived
    ok: bool
    error_code: int | None
    description: str | None = None
    result: Any = None


@dataclass(frozen=True)
class BotMessage:
    """The current state of one message the bot sent (after edits)."""

    message_id: int
    text: str
    entities: list[JsonDict]
    reply_markup: JsonDict | None
    thread_id: int | None
    edited: bool


@dataclass(frozen=True)
class Draft:
    draft_id: int
    text: str
    entities: list[JsonDict]
    can_stop: bool
    keep_on_stop: bool


@dataclass(frozen=True)
class FloodLimits:
    """Telegram's flood limits as reported (Bots FAQ, plus what bots observed for drafts)."""

    chat_interval: float = 1.0  # average seconds between messages in one chat
    chat_burst: int = 3  # short bursts tolerated
    group_per_minute: int = 20  # chats with id < 0
    draft_windows: tuple[tuple[int, float], ...] = ((20, 5.0), (40, 30.0))  # (calls, seconds)
    global_per_second: int = 30  # message methods across all chats
    message_methods: frozenset[str] = frozenset({"sendMessage", "editMessageText", "deleteMessage"})
    draft_methods: frozenset[str] = frozenset({"sendMessageDraft", "sendChatAction"})


class ApiError(Exception):
    def __init__(self, code: int, description: str, retry_after: int | None = None,
                 parameters: JsonDict | None = None) -> None:
        super().__init__(description)
        self.code, self.description, self.retry_after = code, description, retry_after
        self.parameters = dict(parameters or {})
        if retry_after is not None:
            self.parameters["retry_after"] = retry_after

    def response(self) -> web.Response:
        body: JsonDict = {"ok": False, "error_code": self.code, "description": self.description}
        if self.parameters:
            body["parameters"] = self.parameters
        return web.json_response(body, status=self.code)


def bad(description: str) -> ApiError:
    return ApiError(400, f"Bad Request: {description}")


@dataclass
class _Stored:
    message_id: int
    from_bot: bool
    user_id: int
    text: str
    entities: list[JsonDict]
    reply_markup: JsonDict | None
    thread_id: int | None
    date: int
    edit_date: int | None = None
    reply_to: int | None = None
    extra: JsonDict = field(default_factory=dict)


@dataclass
class _ChatState:
    is_forum: bool = False
    title: str | None = None
    topics: set[int] | None = None  # None: any thread id except 1 exists
    next_id: int = 1
    messages: dict[int, _Stored] = field(default_factory=dict)
    drafts: dict[int | None, Draft] = field(default_factory=dict)  # by thread id


class _Flood:
    """Per-chat token bucket, group/draft sliding windows, global window, retry windows."""

    def __init__(self, limits: FloodLimits) -> None:
        self.limits = limits
        self.buckets: dict[int, tuple[float, float]] = {}  # chat -> (tokens, stamp)
        self.group: dict[int, deque[float]] = {}
        self.drafts: dict[int, deque[float]] = {}
        self.global_: deque[float] = deque()
        self.retry_until: dict[int, float] = {}

    def in_window(self, chat_id: int, now: float) -> int | None:
        until = self.retry_until.get(chat_id)
        return math.ceil(until - now) if until is not None and now < until else None

    def admit(self, method: str, chat_id: int, now: float) -> int | None:
        """None if the call may pass (and is counted), else the retry_after to answer."""
        lim, waits = self.limits, []
        if method in lim.message_methods:
            tokens, stamp = self.buckets.get(chat_id, (float(lim.chat_burst), now))
            tokens = min(float(lim.chat_burst), tokens + (now - stamp) / lim.chat_interval)
            if tokens < 1:
                waits.append((1 - tokens) * lim.chat_interval)
            group = self.group.setdefault(chat_id, deque()) if chat_id < 0 else None
            if group is not None:
                _forget_before(group, now - 60.0)
                waits.append(_window_wait(group, lim.group_per_minute, 60.0, now))
            _forget_before(self.global_, now - 1.0)
            waits.append(_window_wait(self.global_, lim.global_per_second, 1.0, now))
            if max(waits) <= 0:
                self.buckets[chat_id] = (tokens - 1, now)
                if group is not None:
                    group.append(now)
                self.global_.append(now)
                return None
        elif method in lim.draft_methods:
            times = self.drafts.setdefault(chat_id, deque())
            _forget_before(times, now - max((w for _, w in lim.draft_windows), default=0.0))
            waits = [_window_wait(times, n, w, now) for n, w in lim.draft_windows]
            if max(waits, default=0.0) <= 0:
                times.append(now)
                return None
        else:
            return None
        retry = max(1, math.ceil(max(waits)))
        self.retry_until[chat_id] = now + retry
        return retry


def _forget_before(times: deque[float], horizon: float) -> None:
    while times and times[0] <= horizon:
        times.popleft()


def _window_wait(times: deque[float], limit: int, window: float, now: float) -> float:
    """Seconds until one more event fits in a sliding window (<= 0: fits now)."""
    recent = [t for t in times if t > now - window]
    if len(recent) < limit:
        return 0.0
    return recent[len(recent) - limit] + window - now


class FakeTelegram(LocalServer):
    """See the module docstring. Runtime knobs: `refuse_drafts`, `flood`, `on_call`, `blocked`."""

    def __init__(
        self,
        token: str = "42:TEST-TOKEN",
        *,
        username: str = "testbot",
        bot_name: str = "Test Bot",
        can_read_all_group_messages: bool = False,
        flood: FloodLimits | None = None,
        clock: Callable[[], float] | None = None,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        super().__init__(host=host, port=port)
        self.token = token
        prefix = token.split(":", 1)[0]
        self.bot_id = int(prefix) if prefix.isdigit() else 42
        self.username = username
        self.bot_name = bot_name
        self.can_read_all_group_messages = can_read_all_group_messages
        self.clock = clock
        self.calls: list[Call] = []
        self.calls_inside_retry_window = 0
        self.parked_polls = 0  # getUpdates requests waiting for an update right now
        self.refuse_drafts = False
        self.on_call: OnCall | None = None
        self.blocked: set[int] = set()  # user ids that blocked the bot (403 on sends)
        self.migrated: dict[int, int] = {}  # group id -> its supergroup's (400 on calls to it)
        self.webhook_url = ""
        self.webhook_secret: str | None = None
        self.webhook_errors: list[str] = []
        self.commands: list[JsonDict] = []
        self.allowed_updates: list[str] | None = None  # None: Telegram's default set
        self.dropped_updates: list[JsonDict] = []  # not in allowed_updates, never delivered
        self.users: dict[int, JsonDict] = {}  # overrides for generated User objects
        self._flood = _Flood(flood) if flood else None
        self._chats: dict[int, _ChatState] = {}
        self._updates: list[JsonDict] = []
        self._next_update_id = 1
        self._callback_ids = itertools.count(1)
        self._open_callbacks: set[str] = set()
        self._failures: dict[str, deque[ApiError]] = {}
        self._lost_responses: dict[str, int] = {}
        self._poll_generation = 0
        self._changed = asyncio.Event()
        self._webhook_task: asyncio.Task[None] | None = None
        self._methods: dict[str, tuple[str, Callable[[JsonDict], Awaitable[Any]]]] = {
            name.lower(): (name, fn)
            for name, fn in {
                "getMe": self._get_me,
                "getUpdates": self._get_updates,
                "setWebhook": self._set_webhook,
                "deleteWebhook": self._delete_webhook,
                "getWebhookInfo": self._get_webhook_info,
                "setMyCommands": self._set_my_commands,
                "deleteMyCommands": self._delete_my_commands,
                "getMyCommands": self._get_my_commands,
                "sendMessage": self._send_message,
                "sendMessageDraft": self._send_message_draft,
                "editMessageText": self._edit_message_text,
                "editMessageReplyMarkup": self._edit_message_reply_markup,
                "deleteMessage": self._delete_message,
                "sendChatAction": self._send_chat_action,
                "answerCallbackQuery": self._answer_callback_query,
                "close": self._true,
                "logOut": self._true,
            }.items()
        }

    # ----------------------------------------------------------------- lifecycle and helpers

    @property
    def base_url(self) -> str:
        """For aiogram: `TelegramAPIServer.from_base(fake.base_url)`."""
        return self.root_url

    @property
    def flood(self) -> FloodLimits | None:
        return self._flood.limits if self._flood else None

    @flood.setter
    def flood(self, limits: FloodLimits | None) -> None:
        self._flood = _Flood(limits) if limits else None

    def now(self) -> float:
        return self.clock() if self.clock else asyncio.get_running_loop().time()

    def build_app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/bot{token}/{method}", self._handle)
        app.router.add_post("/_fake/updates", self._control_push)
        app.router.add_post("/_fake/private_text", self._control_private_text)
        app.router.add_post("/_fake/group_text", self._control_group_text)
        app.router.add_get("/_fake/calls", self._control_calls)
        app.router.add_get("/_fake/messages/{chat_id}", self._control_messages)
        app.router.add_get("/_fake/health", self._control_health)
        return app

    async def before_stop(self) -> None:
        if self._webhook_task:
            self._webhook_task.cancel()
        self._notify()  # long polls see `closing` and return []

    def _notify(self) -> None:
        # Wake everyone waiting for a change (calls, updates, closing); later waiters get a
        # fresh event. Waiters re-check their predicate, so nothing polls on a timer.
        changed, self._changed = self._changed, asyncio.Event()
        changed.set()

    async def _until(self, predicate: Callable[[], Any]) -> Any:
        while not (value := predicate()):
            await self._changed.wait()
        return value

    def calls_to(self, *methods: str) -> list[Call]:
        return [c for c in self.calls if c.method in methods]

    async def wait_for(
        self,
        predicate: Callable[[list[Call]], Any],
        timeout: float = 5.0,
    ) -> Any:
        """Wait until `predicate(fake.calls)` is truthy; returns its value."""
        try:
            async with asyncio.timeout(timeout):
                return await self._until(lambda: predicate(self.calls))
        except TimeoutError:
            seen = ", ".join(f"{c.method}{'' if c.ok else f'!{c.error_code}'}" for c in self.calls)
            raise TimeoutError(f"condition not met in {timeout}s; calls: [{seen}]") from None

    def messages(self, chat_id: int) -> dict[int, BotMessage]:
        """Current state of every (not deleted) message the bot sent to the chat, by id."""
        chat = self._chats.get(chat_id)
        if chat is None:
            return {}
        return {
            m.message_id: BotMessage(
                m.message_id,
                m.text,
                [dict(e) for e in m.entities],
                m.reply_markup,
                m.thread_id,
                m.edit_date is not None,
            )
            for m in chat.messages.values()
            if m.from_bot
        }

    def texts(self, chat_id: int) -> list[str]:
        return [m.text for m in self.messages(chat_id).values()]

    def current_draft(self, chat_id: int, thread_id: int | None = None) -> Draft | None:
        """The draft on screen, or None (a real message to the chat clears it)."""
        chat = self._chats.get(chat_id)
        return chat.drafts.get(thread_id) if chat else None

    def set_chat(
        self,
        chat_id: int,
        *,
        is_forum: bool = False,
        title: str | None = None,
        topics: set[int] | None = None,
    ) -> None:
        chat = self._chat_state(chat_id)
        chat.is_forum, chat.title, chat.topics = is_forum, title, topics

    def delete_topic(self, chat_id: int, thread_id: int) -> None:
        """An admin deletes a forum topic: its messages go with it, and calls into it fail with
        "message thread not found"."""
        chat = self._chat_state(chat_id)
        if chat.topics is not None:
            chat.topics.discard(thread_id)
        for mid in [m.message_id for m in chat.messages.values() if m.thread_id == thread_id]:
            del chat.messages[mid]

    # ------------------------------------------------------------------ fault injection

    def fail_next(
        self,
        method: str,
        status: int,
        description: str,
        retry_after: int | None = None,
        count: int = 1,
    ) -> None:
        """The next `count` calls of `method` answer this error (before any other check)."""
        queue = self._failures.setdefault(method.lower(), deque())
        queue.extend(ApiError(status, description, retry_after) for _ in range(count))

    def lose_next_response(self, method: str, count: int = 1) -> None:
        """The next `count` calls of `method` are carried out (a message is created), then the
        connection closes without an answer: the caller cannot tell whether it landed."""
        key = method.lower()
        self._lost_responses[key] = self._lost_responses.get(key, 0) + count

    # ------------------------------------------------------------------ feeding updates

    def push_update(self, update: JsonDict) -> JsonDict:
        if "update_id" not in update:
            update = {"update_id": self._next_update_id, **update}
        self._next_update_id = max(self._next_update_id, int(update["update_id"]) + 1)
        self._updates.append(update)
        self._notify()
        return update

    def private_text(
        self,
        user_id: int,
        text: str,
        *,
        entities: list[JsonDict] | None = None,
        reply_to: int | None = None,
        **fields: Any,
    ) -> JsonDict:
        message = self._user_message(user_id, user_id, text, entities, reply_to, None)
        message.update(fields)
        return self.push_update({"message": message})

    def group_text(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        thread_id: int | None = None,
        reply_to: int | None = None,
        entities: list[JsonDict] | None = None,
    ) -> JsonDict:
        message = self._user_message(chat_id, user_id, text, entities, reply_to, thread_id)
        return self.push_update({"message": message})

    def migrate_group(self, old: int, new: int, user_id: int, *, notify: bool = True) -> None:
        """The group becomes a supergroup with a new id, as when an admin changes a setting
        that needs one: calls to the old id fail with `migrate_to_chat_id`; with `notify`, the
        service messages of both chats arrive as updates (the old one's first)."""
        self.migrated[old] = new
        if not notify:
            return
        for chat_id, field_name, value in ((old, "migrate_to_chat_id", new),
                                            (new, "migrate_from_chat_id", old)):
            message = self._user_message(chat_id, user_id, "", [], None, None)
            message.pop("text", None)
            message[field_name] = value
            self.push_update({"message": message})

    def callback_query(self, user_id: int, chat_id: int, message_id: int, data: str) -> JsonDict:
        query_id = f"{user_id}{next(self._callback_ids):08d}"
        self._open_callbacks.add(query_id)
        stored = self._chat_state(chat_id).messages.get(message_id)
        message = (
            self._message_dict(chat_id, stored)
            if stored
            else {"chat": self._chat(chat_id), "message_id": message_id, "date": 0}
        )
        query = {
            "id": query_id,
            "from": self._user(user_id),
            "message": message,
            "chat_instance": str(abs(chat_id) * 7919),
            "data": data,
        }
        return self.push_update({"callback_query": query})

    def stopped_generation(
        self, chat_id: int, draft_id: int, thread_id: int | None = None
    ) -> JsonDict:
        """Bot API 10.3: the user pressed Stop on a draft sent with can_stop."""
        event: JsonDict = {"chat": self._chat(chat_id), "draft_id": draft_id}
        if thread_id is not None:
            event["message_thread_id"] = thread_id
        return self.push_update({"stopped_message_generation": event})

    # ------------------------------------------------------------------ object builders

    def _chat_state(self, chat_id: int) -> _ChatState:
        return self._chats.setdefault(chat_id, _ChatState())

    def _bot_user(self) -> JsonDict:
        return {
            "id": self.bot_id,
            "is_bot": True,
            "first_name": self.bot_name,
            "username": self.username,
        }

    def _user(self, user_id: int) -> JsonDict:
        user = {
            "id": user_id,
            "is_bot": False,
            "first_name": f"User{user_id}",
            "username": f"user{user_id}",
            "language_code": "en",
        }
        return user | self.users.get(user_id, {})

    def _chat(self, chat_id: int) -> JsonDict:
        if chat_id > 0:
            user = self._user(chat_id)
            chat = {"id": chat_id, "type": "private", "first_name": user["first_name"]}
            if "username" in user:
                chat["username"] = user["username"]
            return chat
        state = self._chat_state(chat_id)
        chat = {"id": chat_id, "type": "supergroup", "title": state.title or f"Group {-chat_id}"}
        if state.is_forum:
            chat["is_forum"] = True
        return chat

    def _message_dict(self, chat_id: int, m: _Stored, *, nested: bool = False) -> JsonDict:
        out: JsonDict = {
            "message_id": m.message_id,
            "date": m.date,
            "chat": self._chat(chat_id),
            "from": self._bot_user() if m.from_bot else self._user(m.user_id),
        }
        if m.thread_id is not None:
            out["message_thread_id"] = m.thread_id
            if self._chat_state(chat_id).is_forum:
                out["is_topic_message"] = True
        if m.text:
            out["text"] = m.text
        if m.entities:
            out["entities"] = [dict(e) for e in m.entities]
        if m.reply_markup and "inline_keyboard" in m.reply_markup:
            out["reply_markup"] = m.reply_markup
        if m.edit_date is not None:
            out["edit_date"] = m.edit_date
        out.update(m.extra)
        chat = self._chat_state(chat_id)
        if not nested and m.reply_to is not None and m.reply_to in chat.messages:
            out["reply_to_message"] = self._message_dict(
                chat_id, chat.messages[m.reply_to], nested=True
            )
        return out

    def _user_message(
        self,
        chat_id: int,
        user_id: int,
        text: str,
        entities: list[JsonDict] | None,
        reply_to: int | None,
        thread_id: int | None,
    ) -> JsonDict:
        chat = self._chat_state(chat_id)
        if entities is None:
            entities = _auto_entities(text)
        if thread_id is not None and reply_to is None and chat.is_forum:
            # In forum topics Telegram sets reply_to_message to the topic's creation message
            # even when the user did not reply to anything.
            if thread_id not in chat.messages:
                chat.messages[thread_id] = _Stored(
                    thread_id, False, user_id, "", [], None, thread_id, int(time.time()),
                    extra={"forum_topic_created": {"name": f"Topic {thread_id}",
                                                   "icon_color": 7322096}},
                )  # fmt: skip
            reply_to = thread_id
        stored = _Stored(
            message_id=self._next_message_id(chat),
            from_bot=False,
            user_id=user_id,
            text=text,
            entities=list(entities or []),
            reply_markup=None,
            thread_id=thread_id,
            date=int(time.time()),
            reply_to=reply_to,
        )
        chat.messages[stored.message_id] = stored
        return self._message_dict(chat_id, stored)

    @staticmethod
    def _next_message_id(chat: _ChatState) -> int:
        while chat.next_id in chat.messages:
            chat.next_id += 1
        chat.next_id += 1
        return chat.next_id - 1

    # ------------------------------------------------------------------ request pipeline

    async def _handle(self, request: web.Request) -> web.Response:
        at = self.now()
        method_raw = request.match_info["method"]
        method, fn = self._methods.get(method_raw.lower(), (method_raw, None))
        params: JsonDict = {}
        result: Any = None
        try:
            params = await _read_params(request)
            if request.match_info["token"] != self.token:
                raise ApiError(401, "Unauthorized")
            if fn is None:
                raise ApiError(404, "Not Found: method not found")
            hooked = await self._run_hook(method, params)
            if hooked is not None:
                self._record(method, params, at, hooked.status, None, None)
                return hooked
            failures = self._failures.get(method.lower())
            if failures:
                raise failures.popleft()
            if method == "sendMessageDraft" and self.refuse_drafts:
                raise bad("method is not available")
            self._check_flood(method, params)
            result = await fn(params)
        except ApiError as err:
            self._record(method, params, at, err.code, err.description, None)
            return err.response()
        self._record(method, params, at, 200, None, result)
        if self._lost_responses.get(method.lower(), 0) > 0:
            self._lost_responses[method.lower()] -= 1
            raise asyncio.CancelledError  # done, but the connection closes without an answer
        return web.json_response({"ok": True, "result": result})

    async def _run_hook(self, method: str, params: JsonDict) -> web.Response | None:
        if self.on_call is None:
            return None
        outcome = self.on_call(method, params)
        if inspect.isawaitable(outcome):
            outcome = await outcome
        return outcome

    def _record(
        self,
        method: str,
        params: JsonDict,
        at: float,
        status: int,
        description: str | None,
        result: Any,
    ) -> None:
        ok = status < 400
        self.calls.append(Call(method, params, at, ok, None if ok else status, description, result))
        self._notify()

    def _check_flood(self, method: str, params: JsonDict) -> None:
        chat_id = params.get("chat_id")
        if self._flood is None or not isinstance(chat_id, int):
            return
        now = self.now()
        retry = self._flood.in_window(chat_id, now)
        if retry is not None:
            self.calls_inside_retry_window += 1
        else:
            retry = self._flood.admit(method, chat_id, now)
        if retry is not None:
            raise ApiError(429, f"Too Many Requests: retry after {retry}", retry)

    # ------------------------------------------------------------------ methods

    async def _true(self, params: JsonDict) -> bool:
        return True

    async def _get_me(self, params: JsonDict) -> JsonDict:
        return self._bot_user() | {
            "can_join_groups": True,
            "can_read_all_group_messages": self.can_read_all_group_messages,
            "supports_inline_queries": False,
            "can_connect_to_business": False,
            "has_main_web_app": False,
        }

    async def _get_updates(self, params: JsonDict) -> list[JsonDict]:
        if self.webhook_url:
            raise ApiError(
                409,
                "Conflict: can't use getUpdates method while webhook is active; "
                "use deleteWebhook to delete the webhook first",
            )
        offset = _int(params.get("offset"), 0)
        limit = max(1, min(100, _int(params.get("limit"), 100)))
        timeout = max(0, _int(params.get("timeout"), 0))
        if isinstance(params.get("allowed_updates"), list):
            # Telegram remembers the list until the next call that passes one.
            self.allowed_updates = params["allowed_updates"] or None
        if offset > 0:  # confirms (forgets) every update before it
            self._updates = [u for u in self._updates if u["update_id"] >= offset]
        elif offset < 0:
            self._updates = self._updates[offset:]
        self._poll_generation += 1
        generation = self._poll_generation

        def ready() -> bool:
            return bool(self._deliverable()) or self.closing or generation != self._poll_generation

        if timeout > 0 and not ready():
            self.parked_polls += 1
            self._notify()
            try:
                with contextlib.suppress(TimeoutError):
                    async with asyncio.timeout(timeout):
                        await self._until(ready)
            finally:
                self.parked_polls -= 1
        if generation != self._poll_generation:
            raise ApiError(
                409,
                "Conflict: terminated by other getUpdates request; "
                "make sure that only one bot instance is running",
            )
        return self._deliverable()[:limit]

    def _deliverable(self) -> list[JsonDict]:
        """Pending updates; those of types not in `allowed_updates` are dropped, as Telegram
        never delivers them."""

        def wanted(update: JsonDict) -> bool:
            kind = next((k for k in update if k != "update_id"), "")
            if self.allowed_updates is None:
                return kind not in _OPT_IN_UPDATES
            return kind in self.allowed_updates

        if not all(wanted(u) for u in self._updates):
            self.dropped_updates += [u for u in self._updates if not wanted(u)]
            self._updates = [u for u in self._updates if wanted(u)]
        return self._updates

    async def _set_webhook(self, params: JsonDict) -> bool:
        url = params.get("url") or ""
        if not isinstance(url, str):
            raise bad("bad webhook: invalid url")
        if params.get("drop_pending_updates"):
            self._updates.clear()
        if isinstance(params.get("allowed_updates"), list):
            self.allowed_updates = params["allowed_updates"] or None
        self.webhook_url, self.webhook_secret = url, params.get("secret_token")
        if self._webhook_task:
            self._webhook_task.cancel()
            self._webhook_task = None
        if url:
            self._webhook_task = asyncio.get_running_loop().create_task(self._deliver_webhooks())
        return True

    async def _delete_webhook(self, params: JsonDict) -> bool:
        await self._set_webhook({"drop_pending_updates": params.get("drop_pending_updates")})
        return True

    async def _get_webhook_info(self, params: JsonDict) -> JsonDict:
        return {
            "url": self.webhook_url,
            "has_custom_certificate": False,
            "pending_update_count": len(self._updates),
        }

    async def _set_my_commands(self, params: JsonDict) -> bool:
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise bad('parameter "commands" is required')
        self.commands = commands
        return True

    async def _delete_my_commands(self, params: JsonDict) -> bool:
        self.commands = []
        return True

    async def _get_my_commands(self, params: JsonDict) -> list[JsonDict]:
        return self.commands

    def _target(self, params: JsonDict) -> tuple[int, _ChatState]:
        chat_id = params.get("chat_id")
        if not isinstance(chat_id, int) or chat_id == 0:
            raise bad("chat not found")
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if chat_id in self.migrated:
            raise ApiError(400, "Bad Request: group chat was upgraded to a supergroup chat",
                           parameters={"migrate_to_chat_id": self.migrated[chat_id]})
        return chat_id, self._chat_state(chat_id)

    def _thread(self, chat_id: int, chat: _ChatState, params: JsonDict) -> int | None:
        thread_id = params.get("message_thread_id")
        if thread_id is None:
            return None
        if not isinstance(thread_id, int):
            raise bad("message thread not found")
        # The General topic has no thread id: passing 1 fails (a common bug, see reference).
        if chat.is_forum and (
            thread_id == 1 or (chat.topics is not None and thread_id not in chat.topics)
        ):
            raise bad("message thread not found")
        return thread_id

    async def _send_message(self, params: JsonDict) -> JsonDict:
        chat_id, chat = self._target(params)
        text, entities = _checked_text(params, allow_empty=False)
        thread_id = self._thread(chat_id, chat, params)
        markup = _checked_markup(params.get("reply_markup"))
        reply_to = _reply_target(params)
        if reply_to is not None:
            target = chat.messages.get(reply_to)
            if target is None:
                if not _allow_without_reply(params):
                    raise bad("message to be replied not found")
                reply_to = None
            elif thread_id is None:
                thread_id = target.thread_id  # a reply lands in the replied message's topic
        stored = _Stored(
            message_id=self._next_message_id(chat),
            from_bot=True,
            user_id=self.bot_id,
            text=text,
            entities=entities,
            reply_markup=markup,
            thread_id=thread_id,
            date=int(time.time()),
            reply_to=reply_to,
        )
        chat.messages[stored.message_id] = stored
        chat.drafts.clear()  # a real message replaces any draft preview
        return self._message_dict(chat_id, stored)

    async def _send_message_draft(self, params: JsonDict) -> bool:
        chat_id, chat = self._target(params)
        if chat_id < 0:
            raise bad("draft can't be sent to this chat")
        draft_id = params.get("draft_id")
        if not isinstance(draft_id, int) or draft_id == 0:
            raise bad("draft_id must be non-zero")
        text, entities = _checked_text(params, allow_empty=True)
        thread_id = self._thread(chat_id, chat, params)
        chat.drafts[thread_id] = Draft(
            draft_id, text, entities, bool(params.get("can_stop")), bool(params.get("keep_on_stop"))
        )
        return True

    def _own_message(self, params: JsonDict, chat: _ChatState, action: str) -> _Stored:
        message_id = params.get("message_id")
        if params.get("inline_message_id"):
            raise bad("inline messages are not supported by the fake")
        stored = chat.messages.get(message_id) if isinstance(message_id, int) else None
        if stored is None:
            raise bad(f"message to {action} not found")
        if not stored.from_bot:
            raise bad("message can't be edited" if action == "edit" else "message can't be deleted")
        return stored

    async def _edit_message_text(self, params: JsonDict) -> JsonDict:
        chat_id, chat = self._target(params)
        stored = self._own_message(params, chat, "edit")
        text, entities = _checked_text(params, allow_empty=False)
        markup = _checked_markup(params.get("reply_markup"))
        if (
            text == stored.text
            and _norm_entities(entities) == _norm_entities(stored.entities)
            and markup == stored.reply_markup
        ):
            raise bad(NOT_MODIFIED.removeprefix("Bad Request: "))
        # Without reply_markup an edit removes the inline keyboard, as Telegram does.
        stored.text, stored.entities, stored.reply_markup = text, entities, markup
        stored.edit_date = int(time.time())
        return self._message_dict(chat_id, stored)

    async def _edit_message_reply_markup(self, params: JsonDict) -> JsonDict:
        chat_id, chat = self._target(params)
        stored = self._own_message(params, chat, "edit")
        markup = _checked_markup(params.get("reply_markup"))
        if markup == stored.reply_markup:
            raise bad(NOT_MODIFIED.removeprefix("Bad Request: "))
        stored.reply_markup = markup
        stored.edit_date = int(time.time())
        return self._message_dict(chat_id, stored)

    async def _delete_message(self, params: JsonDict) -> bool:
        _, chat = self._target(params)
        stored = self._own_message(params, chat, "delete")
        del chat.messages[stored.message_id]
        return True

    async def _send_chat_action(self, params: JsonDict) -> bool:
        chat_id, chat = self._target(params)
        self._thread(chat_id, chat, params)
        if not isinstance(params.get("action"), str):
            raise bad("wrong parameter action in request")
        return True

    async def _answer_callback_query(self, params: JsonDict) -> bool:
        query_id = params.get("callback_query_id")
        if query_id not in self._open_callbacks:
            raise bad("query is too old and response timeout expired or query ID is invalid")
        self._open_callbacks.discard(query_id)
        return True

    # ------------------------------------------------------------------ webhook delivery

    async def _deliver_webhooks(self) -> None:
        """POST pending updates to the webhook in order; a failure is recorded and retried."""
        headers = {"X-Telegram-Bot-Api-Secret-Token": self.webhook_secret or ""}
        if not self.webhook_secret:
            headers = {}
        async with aiohttp.ClientSession() as session:
            while True:
                await self._until(self._deliverable)
                update = self._updates[0]
                try:
                    async with session.post(self.webhook_url, json=update, headers=headers) as r:
                        delivered = r.status < 300
                        if not delivered:
                            self.webhook_errors.append(
                                f"Wrong response from the webhook: {r.status}"
                            )
                except aiohttp.ClientError as err:
                    delivered = False
                    self.webhook_errors.append(f"Connection failed: {err}")
                if delivered:
                    if self._updates and self._updates[0] is update:
                        self._updates.pop(0)
                    self._notify()
                else:
                    self._notify()
                    await asyncio.sleep(0.2)  # Telegram retries later, too

    # ------------------------------------------------------------------ control API (standalone)

    async def _control_push(self, request: web.Request) -> web.Response:
        return web.json_response(self.push_update(await request.json()))

    async def _control_private_text(self, request: web.Request) -> web.Response:
        body = await request.json()
        return web.json_response(self.private_text(int(body["user_id"]), str(body["text"])))

    async def _control_group_text(self, request: web.Request) -> web.Response:
        body = await request.json()
        update = self.group_text(
            int(body["chat_id"]),
            int(body["user_id"]),
            str(body["text"]),
            thread_id=body.get("thread_id"),
            reply_to=body.get("reply_to"),
            entities=body.get("entities"),
        )
        return web.json_response(update)

    async def _control_calls(self, request: web.Request) -> web.Response:
        calls = [
            {
                "method": c.method,
                "params": c.params,
                "at": c.at,
                "ok": c.ok,
                "error_code": c.error_code,
                "description": c.description,
            }
            for c in self.calls
        ]
        return web.json_response(calls)

    async def _control_messages(self, request: web.Request) -> web.Response:
        chat_id = int(request.match_info["chat_id"])
        return web.json_response(
            {
                str(m.message_id): {
                    "text": m.text,
                    "entities": m.entities,
                    "reply_markup": m.reply_markup,
                    "message_thread_id": m.thread_id,
                }
                for m in self.messages(chat_id).values()
            }
        )

    async def _control_health(self, request: web.Request) -> web.Response:
        return web.json_response({"ok": True})


# ---------------------------------------------------------------------- request parsing


async def _read_params(request: web.Request) -> JsonDict:
    params: JsonDict = {k: _decode(k, v) for k, v in request.query.items()}
    if request.method != "POST" or not request.can_read_body:
        return params
    if request.content_type == "application/json":
        try:
            body = await request.json()
        except json.JSONDecodeError:
            raise bad("can't parse JSON object") from None
        if not isinstance(body, dict):
            raise bad("can't parse JSON object")
        params.update(body)
        return params
    form = await request.post()
    for key, value in form.items():
        if isinstance(value, str):
            params[key] = _decode(key, value)
        else:
            params[key] = f"<file {getattr(value, 'filename', key)}>"
    return params


def _decode(key: str, value: str) -> Any:
    """Form values: aiogram JSON-encodes everything that is not a plain string parameter."""
    if key in _STRING_PARAMS:
        return value
    try:
        return json.loads(value)
    except ValueError:
        return value


def _int(value: Any, default: int) -> int:
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int):
        raise bad("wrong integer value")
    return value


# ---------------------------------------------------------------------- validation


_MENTION = re.compile(r"(?<![\w@])@[A-Za-z][A-Za-z0-9_]{4,31}\b")
_COMMAND = re.compile(r"(?<![\w/])/[A-Za-z0-9_]{1,32}(?:@[A-Za-z][A-Za-z0-9_]{4,31})?\b")


def _auto_entities(text: str) -> list[JsonDict]:
    """The entities Telegram detects in user text by itself: @mentions and /commands."""
    found = [("mention", m) for m in _MENTION.finditer(text)]
    found += [("bot_command", m) for m in _COMMAND.finditer(text)]
    entities = [
        {"type": kind, "offset": utf16_len(text[: m.start()]), "length": utf16_len(m.group())}
        for kind, m in found
    ]
    return sorted(entities, key=lambda e: e["offset"])


def _checked_text(params: JsonDict, *, allow_empty: bool) -> tuple[str, list[JsonDict]]:
    text = params.get("text")
    if text is None:
        text = ""
    if not isinstance(text, str):
        text = str(text)
    entities = _checked_entities(text, params.get("entities"))
    text, entities = _trim(text, entities)
    if not text and not allow_empty:
        raise bad("message text is empty")
    if utf16_len(text) > MAX_TEXT:
        raise bad("message is too long")
    return text, entities


def _checked_entities(text: str, raw: Any) -> list[JsonDict]:
    if raw is None:
        return []
    if not isinstance(raw, list):
        raise bad("can't parse entities: entities must be an array")
    units = text.encode("utf-16-le")
    size = len(units) // 2
    # Offsets that fall between the two halves of a surrogate pair.
    low_halves = (int.from_bytes(units[2 * i : 2 * i + 2], "little") for i in range(size))
    inside_pair = {i for i, unit in enumerate(low_halves) if 0xDC00 <= unit <= 0xDFFF}
    spans: list[tuple[int, int, JsonDict]] = []
    for i, entity in enumerate(raw):
        if not isinstance(entity, dict) or not isinstance(entity.get("type"), str):
            raise bad(f"can't parse entities: entity {i} has no type")
        kind, offset, length = entity["type"], entity.get("offset"), entity.get("length")
        if not isinstance(offset, int) or not isinstance(length, int):
            raise bad(f"can't parse entities: entity {i} ({kind}) has no offset or length")
        if offset < 0 or length <= 0 or offset + length > size:
            raise bad(
                f"can't parse entities: entity {i} ({kind}) with offset {offset} and length "
                f"{length} is out of the text of length {size} (UTF-16 code units)"
            )
        if offset in inside_pair or (offset + length) in inside_pair:
            raise bad(f"can't parse entities: entity {i} ({kind}) splits a surrogate pair")
        required = {"text_link": "url", "text_mention": "user", "custom_emoji": "custom_emoji_id"}
        if kind in required and not entity.get(required[kind]):
            raise bad(f"can't parse entities: entity {i} ({kind}) needs {required[kind]}")
        spans.append((offset, offset + length, entity))
    # Entities may nest but not partially overlap.
    open_ends: list[int] = []
    for start, end, entity in sorted(spans, key=lambda s: (s[0], -s[1])):
        while open_ends and open_ends[-1] <= start:
            open_ends.pop()
        if open_ends and end > open_ends[-1]:
            raise bad(
                f"can't parse entities: entity {entity['type']} at offset {start} overlaps "
                "another entity without being nested in it"
            )
        open_ends.append(end)
    return [dict(e) for _, _, e in sorted(spans, key=lambda s: (s[0], -s[1]))]


def _trim(text: str, entities: list[JsonDict]) -> tuple[str, list[JsonDict]]:
    """Telegram strips leading/trailing whitespace from message text and clips entities."""
    stripped = text.strip()
    if stripped == text:
        return text, entities
    lead = utf16_len(text[: len(text) - len(text.lstrip())])
    end = lead + utf16_len(stripped)
    out = []
    for e in entities:
        start, stop = max(e["offset"], lead), min(e["offset"] + e["length"], end)
        if stop > start:
            out.append(e | {"offset": start - lead, "length": stop - start})
    return stripped, out


def _norm_entities(entities: list[JsonDict]) -> list[tuple[Any, ...]]:
    def key(e: JsonDict) -> tuple[Any, ...]:
        user = e.get("user")
        user_id = user.get("id") if isinstance(user, dict) else None
        return (
            e["offset"], -e["length"], e["type"], e.get("url"), user_id,
            e.get("language"), e.get("custom_emoji_id"),
        )  # fmt: skip

    return sorted(key(e) for e in entities)


def _checked_markup(markup: Any) -> JsonDict | None:
    if markup is None:
        return None
    if not isinstance(markup, dict):
        raise bad("can't parse reply keyboard markup JSON object")
    for row in markup.get("inline_keyboard") or []:
        for button in row:
            if not isinstance(button, dict) or not button.get("text"):
                raise bad("text buttons are unallowed in the inline keyboard")
            data = button.get("callback_data")
            if data is not None and not 1 <= len(str(data).encode()) <= MAX_CALLBACK_DATA:
                raise bad("BUTTON_DATA_INVALID")
    if markup.get("inline_keyboard") == []:
        return None  # an empty keyboard is no keyboard
    return markup


def _reply_target(params: JsonDict) -> int | None:
    reply = params.get("reply_parameters")
    if isinstance(reply, dict) and isinstance(reply.get("message_id"), int):
        return int(reply["message_id"])
    legacy = params.get("reply_to_message_id")
    return legacy if isinstance(legacy, int) else None


def _allow_without_reply(params: JsonDict) -> bool:
    reply = params.get("reply_parameters")
    if isinstance(reply, dict) and reply.get("allow_sending_without_reply"):
        return True
    return bool(params.get("allow_sending_without_reply"))
