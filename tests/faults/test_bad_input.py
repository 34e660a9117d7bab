"""Odd or unwanted input: each kind gets a defined behaviour (an answer, a polite note, or
silence) and never reaches the model unless it is a question."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from bot.handlers.chat import EMPTY, NOT_TEXT
from bot.handlers.commands import HELP

from .rig import GROUP, USER, Rig, rig

MAX_TEXT = 4096  # UTF-16 code units
_ids = itertools.count(5000)


def utf16_len(text: str) -> int:
    return len(text.encode("utf-16-le")) // 2


def private_chat() -> dict[str, Any]:
    return {"id": USER, "type": "private", "first_name": "U"}


def group_chat() -> dict[str, Any]:
    return {"id": GROUP, "type": "supergroup", "title": "G"}


def raw_message(chat: dict[str, Any], **fields: Any) -> dict[str, Any]:
    return {"message_id": next(_ids), "date": 0, "chat": chat,
            "from": {"id": USER, "is_bot": False, "first_name": "U"}, **fields}


def file_fields(kind: str) -> dict[str, Any]:
    f = {"file_id": "f", "file_unique_id": "u"}
    fields: dict[str, dict[str, Any]] = {
        "sticker": {"sticker": {**f, "type": "regular", "width": 1, "height": 1,
                                "is_animated": False, "is_video": False}},
        "photo": {"photo": [{**f, "width": 1, "height": 1}], "caption": "what is this?"},
        "voice": {"voice": {**f, "duration": 1}},
        "document": {"document": {**f, "file_name": "a.pdf"}},
    }
    return fields[kind]


async def replies_then_sentinel(r: Rig, chat_id: int = USER) -> list[str]:
    """Everything else the bot said to `chat_id` by the time the sentinel is answered and every
    handler is done. Updates are handled concurrently, so a note may land after that answer."""
    assert (await r.sentinel()).count("sentinel answer") == 1
    return [t for t in r.tg.texts(chat_id) if t != "sentinel answer"]


def asked(r: Rig) -> list[str]:
    """The user texts the model was asked, in order."""
    return [b["messages"][-1]["content"] for b in r.llm.requests]


@pytest.mark.parametrize("text", ["   ", "\n\t ", "\u200b\u200c\u2060\ufeff"])
async def test_empty_whitespace_or_invisible_text_gets_a_note(text: str) -> None:
    async with rig() as r:
        r.tg.private_text(USER, text)
        assert await replies_then_sentinel(r) == [EMPTY]
        assert asked(r) == ["sentinel question"]


async def test_bare_mention_in_a_group_gets_a_note() -> None:
    async with rig() as r:
        r.tg.group_text(GROUP, USER, "@testbot")
        await r.tg.wait_for(lambda calls: r.tg.texts(GROUP))
        await r.idle()
        assert r.tg.texts(GROUP) == [EMPTY] and not r.llm.requests


async def test_text_at_telegrams_maximum_is_answered_in_full() -> None:
    async with rig() as r:
        text = ("word " * 1000)[: MAX_TEXT - 1] + "!"
        assert utf16_len(text) == MAX_TEXT
        r.tg.private_text(USER, text)
        texts = await r.finals(USER, 2)  # the echo is 10 characters longer: two messages
        assert asked(r) == [text]
        assert all(utf16_len(t) <= MAX_TEXT for t in texts)
        assert " ".join(texts).split() == f"You said: {text}".split()  # split between words


async def test_ten_thousand_emoji() -> None:
    async with rig() as r:
        question = "🙂" * (MAX_TEXT // 2)  # the most emoji one message can hold
        answer = "😀" * 10_000
        r.llm.reply(answer, chunk_chars=700)
        r.tg.private_text(USER, question)
        texts = await r.finals(USER, 5)
        assert asked(r) == [question]
        assert all(utf16_len(t) <= MAX_TEXT for t in texts)
        assert "".join(texts) == answer  # no emoji lost, none split in half


async def test_rtl_and_zero_width_characters_pass_through_unchanged() -> None:
    async with rig() as r:
        text = "مرحبا بالعالم \u200f(שלום)\u200e zero\u200bwidth\u200djoiner a\u2066b\u2069"
        r.tg.private_text(USER, text)
        assert await r.finals(USER) == [f"You said: {text}"]
        assert asked(r) == [text]


async def test_mention_after_emoji_and_rtl_text_is_cut_by_utf16_offsets() -> None:
    async with rig() as r:
        r.tg.group_text(GROUP, USER, "😀😀 שלום @testbot how are you")
        await r.tg.wait_for(lambda calls: r.tg.texts(GROUP) and not
                            any(t.endswith("▌") for t in r.tg.texts(GROUP)))
        await r.idle()
        assert r.llm.requests[0]["messages"][-1]["content"] == "User1001: 😀😀 שלום how are you"


@pytest.mark.parametrize("kind", ["edited_message", "channel_post", "edited_channel_post"])
async def test_edits_and_channel_posts_are_never_delivered(kind: str) -> None:
    async with rig() as r:
        chat = private_chat() if kind == "edited_message" else {
            "id": -1009, "type": "channel", "title": "C"}
        message = raw_message(chat, text="@testbot please answer", edit_date=1)
        if kind != "edited_message":
            message.pop("from")
        update = r.tg.push_update({kind: message})
        assert await replies_then_sentinel(r) == []
        assert update in r.tg.dropped_updates  # not in allowed_updates: Telegram keeps it
        assert asked(r) == ["sentinel question"]


async def test_messages_from_other_bots_are_ignored() -> None:
    async with rig() as r:
        other_bot = {"id": 777, "is_bot": True, "first_name": "Other", "username": "otherbot"}
        r.tg.push_update({"message": raw_message(group_chat(), text="@testbot hello",
                                                 **{"from": other_bot})})
        r.tg.push_update({"message": raw_message(
            {"id": 777, "type": "private", "first_name": "Other"}, text="hello",
            **{"from": other_bot})})
        assert await replies_then_sentinel(r, GROUP) == []
        assert r.tg.texts(777) == []
        assert asked(r) == ["sentinel question"]


async def test_anonymous_group_admin_is_not_taken_for_a_bot() -> None:
    async with rig() as r:
        anonymous = {"id": 1087968824, "is_bot": True, "first_name": "Group",
                     "username": "GroupAnonymousBot"}
        r.tg.push_update({"message": raw_message(
            group_chat(), text="@testbot hi", sender_chat=group_chat(),
            entities=[{"type": "mention", "offset": 0, "length": 8}], **{"from": anonymous})})
        await r.tg.wait_for(lambda calls: r.tg.texts(GROUP) and not
                            any(t.endswith("▌") for t in r.tg.texts(GROUP)))
        await r.idle()
        assert asked(r) == ["G: hi"]


async def test_forwarded_text_is_answered_like_any_text() -> None:
    async with rig() as r:
        origin = {"type": "user", "date": 0,
                  "sender_user": {"id": 9, "is_bot": False, "first_name": "Someone"}}
        r.tg.private_text(USER, "Is this true?", forward_origin=origin, forward_date=0)
        assert await r.finals(USER) == ["You said: Is this true?"]


@pytest.mark.parametrize("kind", ["sticker", "photo", "voice", "document"])
async def test_non_text_in_private_gets_a_polite_note(kind: str) -> None:
    async with rig() as r:
        r.tg.push_update({"message": raw_message(private_chat(), **file_fields(kind))})
        assert await replies_then_sentinel(r) == [NOT_TEXT]
        assert asked(r) == ["sentinel question"]


async def test_non_text_in_a_group_note_only_when_addressed() -> None:
    async with rig() as r:
        addressed = file_fields("photo") | {
            "caption": "@testbot what is this?",
            "caption_entities": [{"type": "mention", "offset": 0, "length": 8}]}
        r.tg.push_update({"message": raw_message(group_chat(), **file_fields("sticker"))})
        r.tg.push_update({"message": raw_message(group_chat(), **file_fields("voice"))})
        r.tg.push_update({"message": raw_message(group_chat(), **addressed)})
        assert await replies_then_sentinel(r, GROUP) == [NOT_TEXT]
        assert asked(r) == ["sentinel question"]


async def test_commands_for_another_bot_in_a_group_are_ignored() -> None:
    async with rig() as r:
        for text in ("/help@otherbot", "/ask@otherbot what time is it", "/new@otherbot",
                     "/start@otherbot"):
            r.tg.group_text(GROUP, USER, text)
        r.tg.group_text(GROUP, USER, "/help@testbot")
        await r.tg.wait_for(lambda calls: r.tg.texts(GROUP))
        await r.idle()
        assert r.tg.texts(GROUP) == [HELP]
        assert not r.llm.requests
