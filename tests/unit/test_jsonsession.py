"""JsonSession: the same calls as aiogram's own session, sent as JSON bodies.

Each call goes through a real aiogram Bot twice, once on aiogram's AiohttpSession (an HTML form)
and once on JsonSession, to the fake Bot API: the parameters it reads must be the same, and the
answers and errors too.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiogram import Bot
from aiogram.client.default import DefaultBotProperties
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.enums import ChatAction
from aiogram.exceptions import TelegramBadRequest, TelegramNetworkError, TelegramRetryAfter
from aiogram.methods import SendDocument
from aiogram.types import (
    BotCommand,
    BotCommandScopeChat,
    BufferedInputFile,
    InlineKeyboardButton,
    InlineKeyboardMarkup,
    LinkPreviewOptions,
    MessageEntity,
    ReplyParameters,
)
from aiohttp import web
from hypothesis import given
from hypothesis import strategies as st

from bot.clock import LoopClock
from bot.render import Rendered
from bot.render.types import Entity
from bot.transport.jsonsession import JsonSession, _as_is
from bot.transport.limits import Limits
from bot.transport.outbound import Outbound
from bot.transport.scheduler import OutboundScheduler, Priority
from bot.transport.target import ChatTarget
from tests.fakes.telegram import FakeTelegram

TOKEN = "42:TEST-TOKEN"
CHAT = 1001


class TypedFake(FakeTelegram):
    """The fake Bot API, also noting each request's content type."""

    def build_app(self) -> web.Application:
        app = super().build_app()
        self.content_types: list[str] = []

        @web.middleware
        async def note(request: web.Request, handler: Any) -> web.StreamResponse:
            if request.method == "POST" and "/getUpdates" not in request.path:
                self.content_types.append(request.content_type)
            return await handler(request)

        app.middlewares.append(note)
        return app


@pytest.fixture
async def tg() -> AsyncIterator[TypedFake]:
    async with TypedFake(token=TOKEN) as fake:
        yield fake


def make_bot(tg: FakeTelegram, kind: type[AiohttpSession]) -> Bot:
    session = kind(api=TelegramAPIServer.from_base(tg.base_url))
    return Bot(TOKEN, session=session, default=DefaultBotProperties(parse_mode=None))


Call = Callable[[Bot], Awaitable[Any]]
MARKUP = InlineKeyboardMarkup(inline_keyboard=[[InlineKeyboardButton(text="■ Stop",
                                                                      callback_data="stop:1")]])
CALLS: dict[str, Call] = {
    "message with entities, reply and keyboard": lambda b: b.send_message(
        chat_id=CHAT, text="Hello *world* ✓ «ü» \"quoted\" & 100%", parse_mode=None,
        entities=[MessageEntity(type="bold", offset=6, length=7)],
        reply_parameters=ReplyParameters(message_id=1, allow_sending_without_reply=True),
        reply_markup=MARKUP, link_preview_options=LinkPreviewOptions(is_disabled=True)),
    "empty draft": lambda b: b.send_message_draft(chat_id=CHAT, draft_id=7, text=""),
    "draft": lambda b: b.send_message_draft(
        chat_id=CHAT, draft_id=7, text="x" * 900, parse_mode=None,
        entities=[MessageEntity(type="italic", offset=0, length=3)]),
    "chat action (an enum)": lambda b: b.send_chat_action(
        chat_id=CHAT, action=ChatAction.TYPING),
    "commands with a scope": lambda b: b.set_my_commands(
        [BotCommand(command="new", description="Start over")],
        scope=BotCommandScopeChat(chat_id=CHAT)),
}


@pytest.mark.parametrize("name", list(CALLS))
async def test_the_fake_reads_the_same_parameters_from_json(tg: TypedFake, name: str) -> None:
    seen = []
    for kind in (AiohttpSession, JsonSession):
        bot = make_bot(tg, kind)
        try:
            before = len(tg.calls)
            await CALLS[name](bot)
            (call,) = tg.calls[before:]
            assert call.ok, call.description
            seen.append(call.params)
        finally:
            await bot.session.close()
    form, as_json = seen
    assert as_json == form
    assert tg.content_types[-1] == "application/json" != tg.content_types[-2]


async def test_answers_and_errors_are_aiograms(tg: TypedFake) -> None:
    bot = make_bot(tg, JsonSession)
    try:
        sent = await bot.send_message(chat_id=CHAT, text="hi")
        assert sent.text == "hi" and sent.chat.id == CHAT
        assert await bot.send_message_draft(chat_id=CHAT, draft_id=1, text="…") is True

        tg.fail_next("sendMessageDraft", 429, "Too Many Requests: retry after 7", retry_after=7)
        with pytest.raises(TelegramRetryAfter) as flood:
            await bot.send_message_draft(chat_id=CHAT, draft_id=1, text="more")
        assert flood.value.retry_after == 7

        with pytest.raises(TelegramBadRequest, match="message to edit not found"):
            await bot.edit_message_text(chat_id=CHAT, message_id=999, text="x")
    finally:
        await bot.session.close()
    assert set(tg.content_types) == {"application/json"}


async def test_network_failures_are_telegram_network_errors(tg: TypedFake) -> None:
    bot = make_bot(tg, JsonSession)
    await tg.stop()
    try:
        with pytest.raises(TelegramNetworkError, match="ConnectionRefusedError"):
            await bot.send_message(chat_id=CHAT, text="nobody listens")
    finally:
        await bot.session.close()


def test_file_uploads_stay_multipart() -> None:
    session = JsonSession()
    bot = Bot(TOKEN, session=session)
    upload = SendDocument(chat_id=CHAT, document=BufferedInputFile(b"data", "a.txt"))
    assert session.json_body(bot, upload) is None  # aiogram's multipart form sends it


RENDERED = Rendered("Hello link pre ✓", (
    Entity("bold", 0, 5), Entity("text_link", 6, 4, url="https://example.com/a?b=c"),
    Entity("pre", 11, 3, language="python")))
ENTITIES = [MessageEntity(**e.to_api()) for e in RENDERED.entities]
TARGET = ChatTarget(chat_id=CHAT, private=True, thread_id=5, reply_to=1)


def outbound(bot: Bot) -> Outbound:
    return Outbound(bot, OutboundScheduler(Limits(), LoopClock()), LoopClock())


# Each call as aiogram validates it (MessageEntity objects), and as transport/outbound.py makes
# it (`model_construct`, the entities as the Bot API's own dicts).
AS_OUTBOUND_MAKES: dict[str, tuple[Call, Call]] = {
    "draft": (
        lambda b: b.send_message_draft(chat_id=CHAT, draft_id=7, text=RENDERED.text,
                                       entities=ENTITIES, parse_mode=None,
                                       message_thread_id=5, can_stop=True),
        lambda b: outbound(b).draft(TARGET, 7, RENDERED, can_stop=True),
    ),
    "message": (
        lambda b: b.send_message(
            chat_id=CHAT, text=RENDERED.text, entities=ENTITIES, parse_mode=None,
            message_thread_id=5, link_preview_options=None, reply_markup=MARKUP,
            reply_parameters=ReplyParameters(message_id=1, allow_sending_without_reply=True)),
        lambda b: outbound(b).send(TARGET, RENDERED, priority=Priority.FINAL, markup=MARKUP,
                                   reply=True),
    ),
    "edit": (
        lambda b: b.edit_message_text(chat_id=CHAT, message_id=1, text=RENDERED.text,
                                      entities=ENTITIES, parse_mode=None, reply_markup=MARKUP),
        lambda b: outbound(b).edit(TARGET, 1, RENDERED, priority=Priority.FINAL, markup=MARKUP),
    ),
}


@pytest.mark.parametrize("name", list(AS_OUTBOUND_MAKES))
async def test_outbound_calls_send_what_aiogram_sends(tg: TypedFake, name: str) -> None:
    validated, made = AS_OUTBOUND_MAKES[name]
    seen = []
    for kind, call in ((AiohttpSession, validated), (JsonSession, made)):
        bot = make_bot(tg, kind)
        try:
            if name == "edit" and not seen:  # message 1, edited by both
                assert (await bot.send_message(chat_id=CHAT, text="to edit")).message_id == 1
            elif name == "edit":
                await bot.edit_message_text(chat_id=CHAT, message_id=1, text="to edit")
            before = len(tg.calls)
            await call(bot)
            (sent,) = tg.calls[before:]
            assert sent.ok, sent.description
            seen.append(sent.params)
        finally:
            await bot.session.close()
    assert seen[1] == seen[0]


JSONISH = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=20,
)


@given(JSONISH)
def test_what_is_sent_as_is_is_what_prepare_value_returns(value: Any) -> None:
    session = JsonSession()
    bot = Bot(TOKEN, session=session)
    if _as_is(value):
        assert session.prepare_value(value, bot=bot, files={}, _dumps_json=False) == value
