"""Telegram fails: a blocked chat is dropped at once, a vanished message is replaced once, 5xx and
network errors are retried for finals only, and 429s are left to the outbound scheduler."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from aiohttp import web

from tests.fakes.llm import Pause
from tests.fakes.telegram import NOT_MODIFIED

from .rig import GROUP, OTHER, USER, Rig, rig

BLOCKED = "Forbidden: bot was blocked by the user"


def calls_for(r: Rig, chat_id: int) -> list[Any]:
    return [c for c in r.tg.calls if c.params.get("chat_id") == chat_id]


def frames(r: Rig) -> list[Any]:
    return r.tg.calls_to("sendMessage", "editMessageText")


def mention(text: str) -> str:
    return f"@testbot {text}"


async def test_403_in_a_private_chat_stops_at_once_and_other_chats_go_on() -> None:
    async with rig() as r:
        r.tg.blocked.add(USER)
        r.llm.ttft = 30  # if the request goes out, it cannot finish before it is cancelled
        r.tg.private_text(USER, "hello?")
        await r.tg.wait_for(lambda calls: any(c.error_code == 403 for c in calls))
        await r.idle()
        assert len(calls_for(r, USER)) == 1  # no retry, no final, no apology
        # nothing is generated for a chat that cannot read it: the model request, made while
        # the placeholder went out, is closed at once
        if r.llm.requests:
            await asyncio.wait_for(r.llm.disconnected.wait(), 5)
        assert r.llm.completed == 0
        r.llm.ttft = 0
        [event] = r.logs.events("chat.unavailable")
        assert event["chat_id"] == USER
        assert not r.logs.events("handler.failed")
        assert await r.sentinel(OTHER) == ["sentinel answer"]


async def test_403_mid_answer_in_a_group_stops_the_stream_and_the_model() -> None:
    async with rig() as r:
        more = asyncio.Event()
        r.llm.script(["First part ", Pause(more), "second part ", Pause(asyncio.Event())])
        r.tg.group_text(GROUP, USER, mention("go"))
        await r.tg.wait_for(lambda calls: r.tg.texts(GROUP))  # first interim message
        r.tg.blocked.add(GROUP)  # the bot is removed from the group
        more.set()
        await r.llm.disconnected.wait()  # the model stops generating
        await r.idle()
        forbidden = [c for c in calls_for(r, GROUP) if c.error_code == 403]
        assert len(forbidden) == 1 and forbidden[0] is calls_for(r, GROUP)[-1]
        assert len(r.logs.events("chat.unavailable")) == 1


async def test_a_topic_deleted_mid_answer_stops_the_answer_quietly() -> None:
    """Its messages cannot arrive anywhere the user would look for them: not in the General
    topic, not as an apology. The model stops, the log has one warning and no traceback."""
    forum = -1000600
    async with rig() as r:
        r.tg.set_chat(forum, is_forum=True, topics={77})
        more = asyncio.Event()
        r.llm.script(["First part ", Pause(more), "second part ", Pause(asyncio.Event())])
        r.tg.group_text(forum, USER, mention("go"), thread_id=77)
        await r.tg.wait_for(lambda calls: r.tg.texts(forum))  # first interim message
        r.tg.delete_topic(forum, 77)
        more.set()
        await r.llm.disconnected.wait()  # the model stops generating
        await r.idle()
        # The live message is gone: the answer goes on in a new one, which the topic refuses.
        refused = [c for c in calls_for(r, forum) if not c.ok]
        assert [c.method for c in refused] == ["editMessageText", "sendMessage"]
        assert refused[-1] is calls_for(r, forum)[-1]
        sent = [c for c in calls_for(r, forum) if c.method == "sendMessage"]
        assert all(c.params.get("message_thread_id") == 77 for c in sent)
        assert not r.logs.events("handler.failed")
        [event] = r.logs.events("chat.unavailable")
        assert "thread not found" in event["error"]
        assert await r.sentinel(OTHER) == ["sentinel answer"]


async def test_403_on_a_handler_reply_is_logged_without_apology() -> None:
    async with rig() as r:
        r.tg.blocked.add(USER)
        r.tg.private_text(USER, "   ")  # answered with a note, which fails
        await r.tg.wait_for(lambda calls: any(c.error_code == 403 for c in calls))
        await r.idle()
        assert len(calls_for(r, USER)) == 1
        assert r.logs.events("chat.unavailable")


async def test_a_handler_reply_into_a_deleted_topic_is_logged_without_apology() -> None:
    """A note (here: to a blank mention) into a topic deleted before it went: the apology
    would go to the same dead topic, and the log gets one warning, not a traceback."""
    forum = -1000601
    async with rig() as r:
        r.tg.set_chat(forum, is_forum=True, topics={78})
        r.tg.delete_topic(forum, 78)
        r.tg.group_text(forum, USER, mention("   "), thread_id=78)
        await r.tg.wait_for(lambda calls: any(c.error_code == 400 for c in calls))
        await r.idle()
        assert [c.method for c in calls_for(r, forum)] == ["sendMessage"]
        assert not r.logs.events("handler.failed")
        [event] = r.logs.events("chat.unavailable")
        assert "thread not found" in event["error"]
        assert await r.sentinel(OTHER) == ["sentinel answer"]


@pytest.mark.parametrize("description", [
    "Bad Request: message to edit not found", "Bad Request: message can't be edited"])
async def test_edit_target_gone_continues_in_a_new_message(description: str) -> None:
    async with rig() as r:
        step1, step2 = asyncio.Event(), asyncio.Event()
        r.llm.script(["Part one, ", Pause(step1), "part two, ", Pause(step2), "part three."])
        r.tg.group_text(GROUP, USER, mention("go"))
        await r.tg.wait_for(lambda calls: r.tg.texts(GROUP))
        r.tg.fail_next("editMessageText", 400, description)
        step1.set()
        await r.tg.wait_for(lambda calls: len(r.sent_texts(GROUP)) == 2)
        step2.set()
        await r.tg.wait_for(lambda calls: any(
            t == "Part one, part two, part three." for t in r.tg.texts(GROUP)))
        await r.idle()
        sent = r.sent_texts(GROUP)
        assert len(sent) == 2 and sent[1].startswith("Part one, part two")  # nothing lost
        assert len(r.logs.events("answer.message_gone")) == 1


async def test_edits_failing_for_good_do_not_spam_new_messages() -> None:
    async with rig() as r:
        def refuse_edits(method: str, params: dict[str, Any]) -> web.Response | None:
            if method != "editMessageText":
                return None
            return web.json_response({"ok": False, "error_code": 400,
                                      "description": "Bad Request: message can't be edited"},
                                     status=400)
        r.tg.on_call = refuse_edits
        steps = [asyncio.Event() for _ in range(5)]
        script: list[Any] = []
        for i, step in enumerate(steps):
            script += [f"piece {i}, ", Pause(step)]
        r.llm.script([*script, "end."])
        r.tg.group_text(GROUP, USER, mention("go"))
        # Frames: message 1, its edit fails, message 2 (the one continuation), its edit fails;
        # then no more live frames, whatever text still comes.
        for i, step in enumerate(steps):
            need = min(2 * i + 1, 4)
            await r.tg.wait_for(lambda calls: len(frames(r)) >= need)  # noqa: B023
            step.set()
        full = "".join(f"piece {i}, " for i in range(5)) + "end."
        await r.tg.wait_for(lambda calls: full in r.tg.texts(GROUP))
        await r.idle()
        assert len(r.sent_texts(GROUP)) == 3  # first message, one continuation, the final
        assert len(frames(r)) == 5


async def test_5xx_on_the_final_message_is_retried_with_backoff() -> None:
    async with rig() as r:
        r.tg.fail_next("sendMessage", 502, "Bad Gateway")
        r.llm.reply("Delivered despite a 502.")
        r.tg.private_text(USER, "hi")
        assert await r.finals(USER) == ["Delivered despite a 502."]
        sends = r.tg.calls_to("sendMessage")
        assert [c.error_code for c in sends] == [502, None]
        assert sends[1].at - sends[0].at >= 0.45
        assert len(r.logs.events("telegram.retry")) == 1


async def test_network_error_on_the_final_message_is_retried() -> None:
    async with rig() as r:
        dropped: list[str] = []

        async def drop_first_send(method: str, params: dict[str, Any]) -> None:
            if method == "sendMessage" and not dropped:
                dropped.append(method)
                raise asyncio.CancelledError  # the connection closes without an answer
        r.tg.on_call = drop_first_send
        r.llm.reply("Delivered despite a reset.")
        r.tg.private_text(USER, "hi")
        assert await r.finals(USER) == ["Delivered despite a reset."]
        assert dropped and len(r.logs.events("telegram.retry")) == 1


def sent_ids(r: Rig, chat_id: int) -> list[int]:
    """Ids of the messages the fake created for the bot's sendMessage calls, answered or not."""
    return [c.result["message_id"] for c in r.tg.calls_to("sendMessage")
            if c.ok and c.params.get("chat_id") == chat_id]


async def test_a_final_that_landed_unanswered_is_not_doubled() -> None:
    async with rig() as r:
        r.tg.lose_next_response("sendMessage")
        r.llm.reply("Delivered once, though the first answer was lost.")
        r.tg.private_text(USER, "hi")
        assert await r.finals(USER) == ["Delivered once, though the first answer was lost."]
        landed, retried = sent_ids(r, USER)
        assert retried == landed + 1
        # The retry is the one the bot knows: the copy it never heard back about is removed.
        assert [c.params["message_id"] for c in r.tg.calls_to("deleteMessage")] == [landed]
        assert r.logs.events("telegram.lost_send_settled")[0]["removed"] == [landed]


async def test_a_live_message_that_landed_unanswered_leaves_no_partial_copy() -> None:
    async with rig() as r:
        step = asyncio.Event()
        r.llm.script(["Part one, ", Pause(step), "part two."])

        def someone_speaks_first(method: str, params: dict[str, Any]) -> None:
            # Another member's message lands just before the bot's: a candidate that is not ours.
            if method == "sendMessage" and not r.tg.calls_to("sendMessage"):
                r.tg.group_text(GROUP, OTHER, "meanwhile, unrelated")
        r.tg.on_call = someone_speaks_first
        r.tg.lose_next_response("sendMessage")
        r.tg.group_text(GROUP, USER, mention("go"))
        await r.tg.wait_for(lambda calls: len(sent_ids(r, GROUP)) == 2)
        step.set()
        await r.tg.wait_for(lambda calls: "Part one, part two." in r.tg.texts(GROUP))
        await r.idle()
        assert r.tg.texts(GROUP) == ["Part one, part two."]  # the copy with its cursor is gone
        orphan = sent_ids(r, GROUP)[0]
        assert [c.params["message_id"] for c in r.tg.calls_to("deleteMessage")] == [orphan]
        probes = [c for c in r.tg.calls_to("editMessageText") if c.error_code == 400]
        # The other member's message, between the last id the bot knew and its retry, was
        # probed too: a message that is not the bot's can't be edited, and is left as it was.
        assert [(c.params["message_id"], c.description) for c in probes] == [
            (orphan - 1, "Bad Request: message can't be edited"),
            (orphan, NOT_MODIFIED)]


@pytest.mark.parametrize(("chat_id", "method"), [
    (USER, "sendMessageDraft"), (GROUP, "sendChatAction"), (GROUP, "editMessageText")])
async def test_5xx_on_an_interim_frame_is_dropped_and_the_answer_completes(
    chat_id: int, method: str
) -> None:
    async with rig() as r:
        r.tg.fail_next(method, 500, "Internal Server Error")
        more, rest = asyncio.Event(), asyncio.Event()
        r.llm.script(["An answer ", Pause(more), "in two ", Pause(rest), "parts."])
        if chat_id == GROUP:
            r.tg.group_text(GROUP, USER, mention("go"))
        else:
            r.tg.private_text(USER, "go")
        if chat_id == GROUP:
            await r.tg.wait_for(lambda calls: r.tg.texts(GROUP))
        else:
            await r.drafted(USER, "An answer")
        more.set()
        await r.tg.wait_for(lambda calls: any(c.error_code == 500 for c in calls))
        rest.set()
        await r.tg.wait_for(lambda calls: "An answer in two parts." in r.tg.texts(chat_id))
        await r.idle()
        assert [c.method for c in r.tg.calls if c.error_code == 500] == [method]
        assert not r.logs.events("telegram.retry")  # interim frames are not retried
        assert not r.logs.events("handler.failed")


async def test_429_is_left_to_the_scheduler_alone() -> None:
    async with rig() as r:
        r.tg.fail_next("sendMessage", 429, "Too Many Requests: retry after 1", retry_after=1)
        r.llm.reply("After the flood window.")
        r.tg.private_text(USER, "hi")
        assert await r.finals(USER) == ["After the flood window."]
        sends = r.tg.calls_to("sendMessage")
        assert [c.error_code for c in sends] == [429, None]  # exactly one retry...
        assert sends[1].at - sends[0].at >= 0.95  # ...after the window Telegram asked for
        assert not r.logs.events("telegram.retry")  # nobody else retried around it
        assert len(r.llm.requests) == 1


SUPERGROUP = -1000500
STRANGER = 1003  # not in ALLOWED_USER_IDS: allowed in GROUP only through ALLOWED_CHAT_IDS


async def test_a_group_that_becomes_a_supergroup_mid_answer_gets_the_rest_there() -> None:
    async with rig() as r:
        step = asyncio.Event()
        r.llm.script(["Part one, ", Pause(step), "part two."])
        r.tg.group_text(GROUP, STRANGER, mention("go"))
        await r.tg.wait_for(lambda calls: r.tg.texts(GROUP))
        r.tg.migrate_group(GROUP, SUPERGROUP, STRANGER)
        step.set()
        await r.tg.wait_for(lambda calls: "Part one, part two." in r.tg.texts(SUPERGROUP))
        await r.idle()
        # Nothing lost: the whole answer is a message of the supergroup, where the members are.
        assert r.tg.texts(SUPERGROUP) == ["Part one, part two."]
        assert r.logs.events("chat.migrated")[0]["new_chat_id"] == SUPERGROUP
        assert r.logs.events("access.chat_migrated")[0]["new_chat_id"] == SUPERGROUP

        # The supergroup is allowed as the group was, and the conversation went with it.
        r.llm.reply("Second answer.")
        r.tg.group_text(SUPERGROUP, STRANGER, mention("and then?"))
        await r.tg.wait_for(lambda calls: "Second answer." in r.tg.texts(SUPERGROUP))
        await r.idle()
        history = [(m["role"], m["content"]) for m in r.llm.requests[-1]["messages"]
                   if m["role"] != "system"]
        assert history[-3:] == [("user", "User1003: go"), ("assistant", "Part one, part two."),
                                ("user", "User1003: and then?")]


async def test_a_migrated_group_is_answered_in_its_supergroup_from_the_first_message() -> None:
    async with rig() as r:
        r.llm.reply("Hello, group.")
        r.tg.group_text(GROUP, STRANGER, mention("hi"))
        await r.tg.wait_for(lambda calls: "Hello, group." in r.tg.texts(GROUP))
        await r.idle()
        r.tg.migrate_group(GROUP, SUPERGROUP, STRANGER)
        r.llm.reply("Hello, supergroup.")
        r.tg.group_text(SUPERGROUP, STRANGER, mention("still there?"))
        await r.tg.wait_for(lambda calls: "Hello, supergroup." in r.tg.texts(SUPERGROUP))
        # The service messages moved the conversation: the model sees the group's turns.
        assert [m["content"] for m in r.llm.requests[-1]["messages"][-3:]] == [
            "User1003: hi", "Hello, group.", "User1003: still there?"]
        # Another group's move grants nothing: only a group that was allowed is followed.
        r.tg.migrate_group(-600, -1000600, STRANGER)
        r.tg.group_text(-1000600, STRANGER, mention("hi"))
        assert await r.sentinel() == ["sentinel answer"]
        assert r.tg.texts(-1000600) == []
