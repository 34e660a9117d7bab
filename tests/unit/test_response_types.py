"""aiogram's per-call `Response[T]` classes outlive garbage collection once the bot used them."""

from __future__ import annotations

import gc
import weakref

from aiogram import Bot
from aiogram.methods import (
    EditMessageText,
    Response,
    SendChatAction,
    SendMessage,
    SendMessageDraft,
)

from bot.middlewares.response_types import KeepResponseTypes
from tests.fakes.session import RecordingSession


async def test_the_response_class_of_a_used_method_is_built_once() -> None:
    session = RecordingSession()
    session.middleware(KeepResponseTypes())
    bot = Bot("42:TEST", session=session)
    await bot.send_message_draft(chat_id=1, draft_id=1, text="hi")
    built = weakref.ref(Response[SendMessageDraft.__returning__])  # type: ignore[name-defined]
    gc.collect()
    assert built() is not None
    assert Response[SendMessageDraft.__returning__] is built()  # type: ignore[name-defined]


def test_without_it_pydantic_lets_the_class_go() -> None:
    """The premise: pydantic's cache is weak, so an unused generic is rebuilt after a GC."""
    built = weakref.ref(Response[tuple[int, str, float]])
    gc.collect()
    assert built() is None


def test_the_streaming_calls_classes_are_built_before_the_first_call() -> None:
    """The first answer's first sendMessage must not pay for building `Response[Message]`."""
    keep = KeepResponseTypes()  # the bot's middleware holds them for the session's life
    gc.collect()
    for method in (SendMessage, EditMessageText, SendMessageDraft, SendChatAction):
        built = weakref.ref(Response[method.__returning__])  # type: ignore[name-defined]
        gc.collect()
        assert built() is not None, method.__name__
    del keep
