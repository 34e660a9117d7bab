"""Self-tests of the fake outside services: real HTTP, real aiogram Bot, no sleeps."""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator

import aiohttp
import httpx
import pytest
from aiogram import Bot, Dispatcher
from aiogram.client.session.aiohttp import AiohttpSession
from aiogram.client.telegram import TelegramAPIServer
from aiogram.exceptions import TelegramBadRequest, TelegramConflictError, TelegramRetryAfter
from aiogram.types import InlineKeyboardButton, InlineKeyboardMarkup, Message, MessageEntity
from aiohttp import web

from tests.fakes.__main__ import build, parse_args
from tests.fakes.llm import Cut, Error, FakeLLM, Finish, Pause, Raw, Reasoning
from tests.fakes.telegram import NOT_MODIFIED, Call, FakeTelegram, FloodLimits

TOKEN = "42:TEST-TOKEN"


class ManualTime:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def tg() -> AsyncIterator[FakeTelegram]:
    async with FakeTelegram(token=TOKEN) as fake:
        yield fake


@pytest.fixture
async def bot(tg: FakeTelegram) -> AsyncIterator[Bot]:
    session = AiohttpSession(api=TelegramAPIServer.from_base(tg.base_url))
    bot = Bot(TOKEN, session=session)
    try:
        yield bot
    finally:
        await bot.session.close()


# ---------------------------------------------------------------------- FakeTelegram, raw HTTP


async def test_wrong_token_and_unknown_method(tg: FakeTelegram) -> None:
    async with aiohttp.ClientSession() as http:
        async with http.post(f"{tg.base_url}/bot1:WRONG/getMe") as r:
            assert r.status == 401
            assert await r.json() == {"ok": False, "error_code": 401, "description": "Unauthorized"}
        async with http.post(f"{tg.base_url}/bot{TOKEN}/sendPigeon", json={}) as r:
            assert r.status == 404
            body = await r.json()
            assert body["description"] == "Not Found: method not found"
        async with http.post(f"{tg.base_url}/bot{TOKEN}/getme") as r:  # case-insensitive
            assert (await r.json())["result"]["username"] == "testbot"
    assert [(c.method, c.error_code) for c in tg.calls] == [
        ("getMe", 401),
        ("sendPigeon", 404),
        ("getMe", None),
    ]


async def test_json_body_entities_in_utf16_units(tg: FakeTelegram) -> None:
    url = f"{tg.base_url}/bot{TOKEN}/sendMessage"
    text = "😀 bold"  # the emoji is 2 UTF-16 units, so "bold" starts at 3
    async with aiohttp.ClientSession() as http:
        ok = {"chat_id": 5, "text": text, "entities": [{"type": "bold", "offset": 3, "length": 4}]}
        async with http.post(url, json=ok) as r:
            assert (await r.json())["result"]["entities"][0]["offset"] == 3
        for entities, reason in [
            ([{"type": "bold", "offset": 3, "length": 5}], "out of the text"),
            ([{"type": "bold", "offset": 1, "length": 2}], "surrogate pair"),
            ([{"type": "bold", "offset": 3, "length": 0}], "out of the text"),
            (
                [
                    {"type": "bold", "offset": 3, "length": 3},
                    {"type": "italic", "offset": 4, "length": 3},
                ],
                "overlaps",
            ),
        ]:
            async with http.post(url, json={**ok, "entities": entities}) as r:
                body = await r.json()
                assert r.status == 400
                assert body["description"].startswith("Bad Request: can't parse entities: ")
                assert reason in body["description"]
        nested = [
            {"type": "bold", "offset": 3, "length": 4},
            {"type": "italic", "offset": 4, "length": 2},
        ]
        async with http.post(url, json={**ok, "entities": nested}) as r:
            assert r.status == 200
        for text, description in [("  \n", "message text is empty"), ("x" * 4097, "too long")]:
            async with http.post(url, json={"chat_id": 5, "text": text}) as r:
                assert r.status == 400
                assert description in (await r.json())["description"]
        # 4096 UTF-16 units is the limit: 2048 emoji fit, one more character does not.
        async with http.post(url, json={"chat_id": 5, "text": "😀" * 2048}) as r:
            assert r.status == 200
        async with http.post(url, json={"chat_id": 5, "text": "😀" * 2048 + "x"}) as r:
            assert r.status == 400


# ---------------------------------------------------------------------- FakeTelegram, aiogram


async def test_aiogram_send_edit_and_not_modified(tg: FakeTelegram, bot: Bot) -> None:
    me = await bot.get_me()
    assert (me.id, me.username, me.can_read_all_group_messages) == (42, "testbot", False)

    first = await bot.send_message(
        7, "hello", entities=[MessageEntity(type="bold", offset=0, length=5)]
    )
    second = await bot.send_message(7, "again")
    assert (first.message_id, second.message_id) == (1, 2)
    assert first.chat.type == "private" and first.from_user and first.from_user.id == 42
    assert first.entities and first.entities[0].type == "bold"

    edited = await bot.edit_message_text("hello world", chat_id=7, message_id=1)
    assert not isinstance(edited, bool) and edited.text == "hello world"
    with pytest.raises(TelegramBadRequest) as not_modified:
        await bot.edit_message_text("hello world", chat_id=7, message_id=1)
    assert not_modified.value.message == NOT_MODIFIED
    # Telegram trims whitespace, so a trailing newline is no change either.
    with pytest.raises(TelegramBadRequest, match="not modified"):
        await bot.edit_message_text("hello world\n", chat_id=7, message_id=1)
    with pytest.raises(TelegramBadRequest, match="message to edit not found"):
        await bot.edit_message_text("x", chat_id=7, message_id=99)

    keyboard = InlineKeyboardMarkup(
        inline_keyboard=[[InlineKeyboardButton(text="Stop", callback_data="stop:1")]]
    )
    with_kb = await bot.edit_message_text(
        "hello world", chat_id=7, message_id=1, reply_markup=keyboard
    )
    assert not isinstance(with_kb, bool) and with_kb.reply_markup is not None
    await bot.edit_message_reply_markup(chat_id=7, message_id=1, reply_markup=None)
    assert await bot.delete_message(7, 2)

    state = tg.messages(7)
    assert list(state) == [1]
    assert state[1].text == "hello world" and state[1].reply_markup is None and state[1].edited
    assert [c.method for c in tg.calls_to("sendMessage")] == ["sendMessage"] * 2
    assert tg.calls_to("editMessageText")[1].error_code == 400


async def test_aiogram_drafts_private_only(tg: FakeTelegram, bot: Bot) -> None:
    assert await bot.send_message_draft(7, draft_id=5, text="thin", can_stop=True)
    assert await bot.send_message_draft(7, draft_id=5)  # empty text: "Thinking…"
    draft = tg.current_draft(7)
    assert draft is not None and draft.draft_id == 5 and draft.text == "" and not draft.can_stop
    with pytest.raises(TelegramBadRequest, match="draft can't be sent to this chat"):
        await bot.send_message_draft(-100, draft_id=5, text="x")
    with pytest.raises(TelegramBadRequest, match="draft_id"):
        await bot.send_message_draft(7, draft_id=0, text="x")
    await bot.send_message(7, "final")
    assert tg.current_draft(7) is None  # a real message replaces the draft

    tg.refuse_drafts = True
    with pytest.raises(TelegramBadRequest, match="method is not available"):
        await bot.send_message_draft(7, draft_id=6, text="x")
    params = tg.calls_to("sendMessageDraft")[0].params
    assert params == {"chat_id": 7, "draft_id": 5, "text": "thin", "can_stop": True}


async def test_long_poll_woken_by_push_update(tg: FakeTelegram, bot: Bot) -> None:
    poll = asyncio.create_task(bot.get_updates(offset=0, timeout=30))
    await tg.wait_for(lambda _: tg.parked_polls == 1)
    tg.push_update({"message_reaction": {}})  # opt-in kind: never delivered by default
    pushed = tg.private_text(7, "/start hello")
    updates = await asyncio.wait_for(poll, 5)
    assert [u.update_id for u in updates] == [pushed["update_id"]]
    assert [list(u)[1] for u in tg.dropped_updates] == ["message_reaction"]
    message = updates[0].message
    assert message is not None and message.text == "/start hello"
    assert message.entities and message.entities[0].type == "bot_command"

    group = tg.group_text(-100, 7, "hi @testbot", reply_to=None)
    assert group["message"]["entities"] == [{"type": "mention", "offset": 3, "length": 8}]
    tg.set_chat(-200, is_forum=True)
    topic = tg.group_text(-200, 8, "in topic", thread_id=10)
    stopped = tg.stopped_generation(7, draft_id=5)
    query_update = tg.callback_query(7, 7, 1, "stop:1")
    updates = await bot.get_updates(offset=pushed["update_id"] + 1, timeout=1)
    pushed_ids = [u["update_id"] for u in (group, topic, stopped, query_update)]
    assert [u.update_id for u in updates] == pushed_ids
    topic_message = updates[1].message
    assert topic_message is not None and topic_message.is_topic_message
    assert topic_message.message_thread_id == 10 and topic_message.chat.is_forum
    assert updates[2].stopped_message_generation is not None
    assert updates[2].stopped_message_generation.draft_id == 5
    query = updates[3].callback_query
    assert query is not None and query.data == "stop:1"
    assert await bot.answer_callback_query(query.id)
    with pytest.raises(TelegramBadRequest, match="query is too old"):
        await bot.answer_callback_query(query.id)
    assert topic["message"]["reply_to_message"]["forum_topic_created"]

    with pytest.raises(TelegramBadRequest, match="message thread not found"):
        await bot.send_message(-200, "x", message_thread_id=1)
    sent = await bot.send_message(-200, "in topic", message_thread_id=10)
    assert sent.message_thread_id == 10 and sent.chat.type == "supergroup"


async def test_dispatcher_polling_round_trip(tg: FakeTelegram, bot: Bot) -> None:
    dp = Dispatcher()

    @dp.message()
    async def echo(message: Message) -> None:
        await message.answer(f"echo: {message.text}")

    polling = asyncio.create_task(
        dp.start_polling(bot, handle_signals=False, close_bot_session=False)
    )
    try:
        tg.private_text(7, "hello")
        await tg.wait_for(lambda _: tg.texts(7) == ["echo: hello"])
    finally:
        await dp.stop_polling()
        await polling


async def test_poll_times_out_empty_and_confirms_offset(tg: FakeTelegram, bot: Bot) -> None:
    tg.private_text(7, "a")
    tg.private_text(7, "b")
    first = await bot.get_updates(timeout=0)
    assert len(first) == 2
    assert await bot.get_updates(offset=first[-1].update_id + 1, timeout=0) == []


async def test_fail_next_and_hook(tg: FakeTelegram, bot: Bot) -> None:
    tg.fail_next("sendMessage", 429, "Too Many Requests: retry after 7", retry_after=7)
    with pytest.raises(TelegramRetryAfter) as flood:
        await bot.send_message(7, "x")
    assert flood.value.retry_after == 7
    assert (await bot.send_message(7, "x")).message_id == 1

    seen: list[str] = []

    async def hook(method: str, params: dict[str, object]) -> None:
        seen.append(method)

    tg.on_call = hook
    await bot.send_chat_action(7, "typing")
    assert seen == ["sendChatAction"]


async def test_flood_limits_answer_429_and_count_window() -> None:
    clock = ManualTime()
    async with FakeTelegram(token=TOKEN, flood=FloodLimits(), clock=clock) as tg:
        session = AiohttpSession(api=TelegramAPIServer.from_base(tg.base_url))
        flooded = Bot(TOKEN, session=session)
        try:
            for i in range(3):  # the burst
                await flooded.send_message(7, f"m{i}")
            with pytest.raises(TelegramRetryAfter) as first:
                await flooded.send_message(7, "too soon")
            assert first.value.retry_after == 1
            assert tg.calls_inside_retry_window == 0
            with pytest.raises(TelegramRetryAfter):
                await flooded.edit_message_text("inside the window", chat_id=7, message_id=1)
            assert tg.calls_inside_retry_window == 1
            await flooded.send_message(8, "another chat is fine")
            clock.now += 1.0
            await flooded.send_message(7, "after the window")

            # Drafts: 20 per 5 s, shared with sendChatAction.
            for i in range(19):
                await flooded.send_message_draft(9, draft_id=1, text=str(i))
            await flooded.send_chat_action(9, "typing")
            with pytest.raises(TelegramRetryAfter) as drafts:
                await flooded.send_message_draft(9, draft_id=1, text="21st")
            assert drafts.value.retry_after == 5

            # Groups: 20 per minute even when spaced by the per-chat second.
            start = clock.now
            for i in range(20):
                clock.now = start + 2.0 * i
                await flooded.send_message(-100, f"g{i}")
            clock.now = start + 40.0
            with pytest.raises(TelegramRetryAfter) as group:
                await flooded.send_message(-100, "21st in a minute")
            assert group.value.retry_after == 20
        finally:
            await flooded.session.close()
    refused = [c for c in tg.calls if c.error_code == 429]
    assert len(refused) == 4 and all(isinstance(c, Call) for c in refused)


async def test_webhook_delivery_and_getupdates_conflict(tg: FakeTelegram, bot: Bot) -> None:
    received: list[dict[str, object]] = []
    got = asyncio.Event()

    async def endpoint(request: web.Request) -> web.Response:
        assert request.headers["X-Telegram-Bot-Api-Secret-Token"] == "s3cret"
        received.append(await request.json())
        got.set()
        return web.Response()

    app = web.Application()
    app.router.add_post("/hook", endpoint)
    runner = web.AppRunner(app)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    try:
        port = runner.addresses[0][1]
        await bot.set_webhook(f"http://127.0.0.1:{port}/hook", secret_token="s3cret")
        update = tg.private_text(7, "via webhook")
        await asyncio.wait_for(got.wait(), 5)
        assert received == [update]
        with pytest.raises(TelegramConflictError):
            await bot.get_updates()
        await bot.delete_webhook()
        assert (await bot.get_webhook_info()).url == ""
    finally:
        await runner.cleanup()


# ---------------------------------------------------------------------- FakeLLM


@pytest.fixture
async def llm() -> AsyncIterator[FakeLLM]:
    async with FakeLLM(chunk_chars=3) as fake:
        yield fake


@pytest.fixture
async def http(llm: FakeLLM) -> AsyncIterator[httpx.AsyncClient]:
    async with httpx.AsyncClient(base_url=llm.base_url, timeout=5) as client:
        yield client


def chat(text: str = "hi", **extra: object) -> dict[str, object]:
    return {"model": "fake-model", "messages": [{"role": "user", "content": text}], **extra}


async def read_stream(http: httpx.AsyncClient, body: dict[str, object]) -> list[str]:
    """The `data:` payloads of one streamed completion (stops at [DONE])."""
    payloads: list[str] = []
    async with http.stream("POST", "/chat/completions", json=body) as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/event-stream")
        async for line in response.aiter_lines():
            if line.startswith("data: "):
                payloads.append(line.removeprefix("data: "))
    return payloads


async def test_llm_streams_scripted_reply(llm: FakeLLM, http: httpx.AsyncClient) -> None:
    llm.reply("Hello, world")
    payloads = await read_stream(http, chat(stream=True, stream_options={"include_usage": True}))
    assert payloads[-1] == "[DONE]"
    chunks = [json.loads(p) for p in payloads[:-1]]
    assert chunks[0]["choices"][0]["delta"] == {"role": "assistant", "content": ""}
    deltas = [c["choices"][0]["delta"].get("content") for c in chunks[1:-2]]
    assert deltas == ["Hel", "lo,", " wo", "rld"]
    assert chunks[-2]["choices"][0]["finish_reason"] == "stop"
    assert chunks[-1]["choices"] == [] and chunks[-1]["usage"]["completion_tokens"] == 4
    assert all(c["object"] == "chat.completion.chunk" for c in chunks)

    llm.script([Reasoning("hmm"), "A", Raw(": keep-alive\n\n"), "B", Finish("length")])
    chunks = [json.loads(p) for p in (await read_stream(http, chat(stream=True)))[:-1]]
    assert chunks[1]["choices"][0]["delta"] == {"reasoning_content": "hmm"}
    assert [c["choices"][0]["finish_reason"] for c in chunks][-1] == "length"
    assert "usage" not in chunks[-1]

    # Nothing queued: echo; stream false: one chat.completion.
    response = await http.post("/chat/completions", json=chat("ping"))
    assert response.json()["choices"][0]["message"]["content"] == "You said: ping"
    assert [r["messages"][0]["content"] for r in llm.requests] == ["hi", "hi", "ping"]
    assert llm.completed == 2 and llm.disconnects == 0

    models = await http.get("/models")
    assert [m["id"] for m in models.json()["data"]] == ["fake-model"]


async def test_llm_detects_client_disconnect(llm: FakeLLM, http: httpx.AsyncClient) -> None:
    gate = asyncio.Event()
    llm.script(["partial", Pause(gate), "never sent"])
    async with http.stream("POST", "/chat/completions", json=chat(stream=True)) as response:
        lines = response.aiter_lines()
        async for line in lines:
            if "partial" in line:
                break  # leaving the block closes the connection mid-stream
    await asyncio.wait_for(llm.disconnected.wait(), 5)
    assert llm.disconnects == 1 and llm.active_streams == 0

    llm.stall_after(1)
    llm.disconnected.clear()
    async with http.stream("POST", "/chat/completions", json=chat(stream=True)) as response:
        async for line in response.aiter_lines():
            if '"content":"You"' in line:
                break
    await asyncio.wait_for(llm.disconnected.wait(), 5)
    assert llm.disconnects == 2


async def test_llm_faults(llm: FakeLLM, http: httpx.AsyncClient) -> None:
    llm.fail_next(429, headers={"Retry-After": "2"})
    response = await http.post("/chat/completions", json=chat(stream=True))
    assert response.status_code == 429 and response.headers["Retry-After"] == "2"
    assert "error" in response.json()

    llm.refuse_streaming = True
    response = await http.post("/chat/completions", json=chat(stream=True))
    assert response.json() == {"error": {"message": "stream is not supported"}}
    llm.refuse_streaming = False

    llm.script(["ok", Error({"message": "overloaded", "code": 529})])
    payloads = await read_stream(http, chat(stream=True))
    assert json.loads(payloads[-1]) == {"error": {"message": "overloaded", "code": 529}}

    llm.script(["abc", Cut()])
    with pytest.raises(httpx.RemoteProtocolError):
        await read_stream(http, chat(stream=True))
    assert llm.disconnects == 0  # the fake cut it, the client did not hang up


def test_standalone_command_lines() -> None:
    telegram = build(parse_args(["telegram", "--port", "8081"]))
    assert isinstance(telegram, FakeTelegram) and telegram.host == "0.0.0.0"
    llm = build(parse_args(["llm", "--port", "8082", "--reply", "Hi", "--model", "m1"]))
    assert isinstance(llm, FakeLLM) and llm.default_reply == "Hi" and llm.models == ["m1"]


async def test_a_fake_that_accepts_every_pending_connection_at_once() -> None:
    """`accept_all` (the flood benchmark's fakes): 200 connections opened together are all
    served, and stopping closes the listener."""

    class Eager(FakeLLM):
        accept_all = True

    async with Eager() as llm:
        llm.default_reply = "ok"
        connector = aiohttp.TCPConnector(limit=0, force_close=True)
        async with aiohttp.ClientSession(base_url=llm.base_url + "/", connector=connector) as s:

            async def ask(i: int) -> str:
                async with s.post("chat/completions", json=chat(f"q{i}")) as response:
                    body = await response.json()
                    return str(body["choices"][0]["message"]["content"])

            answers = await asyncio.gather(*(ask(i) for i in range(200)))
        assert answers == ["ok"] * 200
        port = llm.port
    with pytest.raises(OSError):
        _, writer = await asyncio.open_connection("127.0.0.1", port)
        writer.close()
