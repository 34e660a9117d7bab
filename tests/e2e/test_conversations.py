"""Memory, groups, topics, commands and access — through the real Dispatcher and the fakes."""

from __future__ import annotations

import asyncio
from pathlib import Path

from tests.e2e.harness import TOKEN, USER, Harness, harness, running_bot
from tests.fakes.llm import FakeLLM, Pause
from tests.fakes.telegram import FakeTelegram

GROUP = -1000500
FORUM = -1000600
OTHER = 7777  # not in ALLOWED_USER_IDS


def user_contents(body: dict) -> list[str]:  # type: ignore[type-arg]
    return [m["content"] for m in body["messages"] if m["role"] == "user"]


async def test_history_survives_a_restart_with_the_same_sqlite_file(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path}/bot.sqlite3"
    async with FakeTelegram(token=TOKEN) as tg, FakeLLM() as llm:
        async with running_bot(tg, llm, storage_url=url) as app:
            llm.reply("Paris.")
            tg.private_text(USER, "Capital of France?")
            await Harness(tg, llm, app).finals(USER, 1)
        async with running_bot(tg, llm, storage_url=url) as app:
            llm.reply("About 2 million.")
            tg.private_text(USER, "Its population?")
            await Harness(tg, llm, app).finals(USER, 2)
        msgs = llm.requests[-1]["messages"]
        assert [m["content"] for m in msgs[1:]] == [
            "Capital of France?", "Paris.", "Its population?"]


async def test_a_followed_supergroup_stays_allowed_after_a_restart(tmp_path: Path) -> None:
    """ALLOWED_CHAT_IDS names the group; after it became a supergroup and the bot restarted, a
    member who is not in ALLOWED_USER_IDS is still answered there."""
    url = f"sqlite:///{tmp_path}/bot.sqlite3"
    group, supergroup, member = -600, -1000601, OTHER
    async with FakeTelegram(token=TOKEN) as tg, FakeLLM() as llm:
        async with running_bot(tg, llm, storage_url=url, allowed_chat_ids=str(group)) as app:
            h = Harness(tg, llm, app)
            llm.reply("Hello, group.")
            tg.group_text(group, member, "@testbot hi")
            await h.finals(group, 1)
            tg.migrate_group(group, supergroup, member)
            llm.reply("Private answer.")
            tg.private_text(USER, "after the move")  # updates go in order: the move is in
            await h.finals(USER, 1)
        async with running_bot(tg, llm, storage_url=url, allowed_chat_ids=str(group)) as app:
            llm.reply("Still here.")
            tg.group_text(supergroup, member, "@testbot after the restart?")
            assert await Harness(tg, llm, app).finals(supergroup, 1) == ["Still here."]
        # Without the group in ALLOWED_CHAT_IDS the move grants nothing.
        async with running_bot(tg, llm, storage_url=url) as app:
            tg.group_text(supergroup, member, "@testbot and now?")
            llm.reply("Private again.")
            tg.private_text(USER, "sentinel")
            await Harness(tg, llm, app).finals(USER, 2)
            assert tg.texts(supergroup) == ["Still here."]


async def test_startup_registers_command_menus_for_private_chats_and_groups() -> None:
    async with harness() as h:
        scopes = {c.params["scope"]["type"]: c.params["commands"]
                  for c in h.tg.calls_to("setMyCommands")}
        assert set(scopes) == {"all_private_chats", "all_group_chats"}
        assert "ask" in {c["command"] for c in scopes["all_group_chats"]}
        assert "ask" not in {c["command"] for c in scopes["all_private_chats"]}
        assert h.tg.calls_to("getMe")


async def test_new_starts_a_fresh_conversation() -> None:
    async with harness() as h:
        h.llm.reply("One.")
        h.tg.private_text(USER, "first")
        await h.finals(USER, 1)
        h.tg.private_text(USER, "/new")
        await h.tg.wait_for(lambda c: any("New conversation" in t for t in h.tg.texts(USER)))
        h.llm.reply("Two.")
        h.tg.private_text(USER, "second")
        await h.finals(USER, 3)
        assert user_contents(h.llm.requests[-1]) == ["second"]


async def test_group_answers_only_when_addressed() -> None:
    async with harness() as h:
        h.tg.group_text(GROUP, USER, "just chatting among humans")
        h.tg.group_text(GROUP, USER, "/ask@otherbot what now")
        h.llm.reply("Hello group.")
        h.tg.group_text(GROUP, USER, "@testbot what is 2+2?")
        await h.finals(GROUP, 1)
        assert len(h.llm.requests) == 1
        # the mention is stripped and the turn attributed to its sender
        assert user_contents(h.llm.requests[0])[-1].endswith(": what is 2+2?")
        answer = h.tg.calls_to("sendMessage")[0]
        assert answer.params["reply_parameters"]["message_id"] > 0  # replies to the asker

        bot_msg = max(h.tg.messages(GROUP))
        h.llm.reply("Reply answered.")
        h.tg.group_text(GROUP, USER, "and why?", reply_to=bot_msg)
        await h.finals(GROUP, 2)
        h.llm.reply("Ask answered.")
        h.tg.group_text(GROUP, USER, "/ask tell me more")
        await h.finals(GROUP, 3)
        assert len(h.llm.requests) == 3
        assert user_contents(h.llm.requests[-1])[-1].endswith(": tell me more")


async def test_group_mode_all_answers_everything() -> None:
    async with harness(group_mode="all") as h:
        h.llm.reply("Sure.")
        h.tg.group_text(GROUP, USER, "anyone?")
        await h.finals(GROUP, 1)
        assert len(h.llm.requests) == 1


async def test_forum_topics_are_separate_conversations_and_keep_their_thread() -> None:
    async with harness() as h:
        h.tg.set_chat(FORUM, is_forum=True, topics={77})
        h.llm.reply("In topic.")
        h.tg.group_text(FORUM, USER, "@testbot topic question", thread_id=77)
        await h.finals(FORUM, 1)
        h.llm.reply("In general.")
        h.tg.group_text(FORUM, USER, "@testbot general question")
        await h.finals(FORUM, 2)
        to_forum = [c for c in h.tg.calls if c.params.get("chat_id") == FORUM]
        topic_calls = [c for c in to_forum if c.params.get("message_thread_id") == 77]
        assert all(c.ok for c in to_forum)
        assert topic_calls and topic_calls[0].method in ("sendChatAction", "sendMessage")
        # the General topic has no thread id: nothing may pass one (1 would fail)
        assert all(c.params.get("message_thread_id") in (None, 77) for c in to_forum)
        # separate histories
        assert user_contents(h.llm.requests[-1]) == [user_contents(h.llm.requests[-1])[-1]]


async def test_denied_group_gets_silence_allowed_chat_ids_open_it() -> None:
    async with harness(allowed_chat_ids=str(GROUP)) as h:
        h.tg.group_text(-1000999, OTHER, "@testbot hello?")
        h.llm.reply("Welcome.")
        h.tg.group_text(GROUP, OTHER, "@testbot hello?")
        await h.finals(GROUP, 1)
        assert len(h.llm.requests) == 1
        assert not h.tg.texts(-1000999)


async def test_second_message_waits_its_turn() -> None:
    async with harness() as h:
        gate = asyncio.Event()
        h.llm.script(["First ", Pause(gate), "answer."])
        h.tg.private_text(USER, "one")
        await h.tg.wait_for(lambda c: h.llm.requests, timeout=10)
        h.llm.reply("Second answer.")
        h.tg.private_text(USER, "two")
        await h.tg.wait_for(lambda c: len(h.tg.calls_to("getUpdates")) > 3, timeout=10)
        assert len(h.llm.requests) == 1  # not interleaved
        gate.set()
        texts = await h.finals(USER, 2)
        assert texts == ["First answer.", "Second answer."]
        assert user_contents(h.llm.requests[1]) == ["one", "two"]


async def test_stop_closes_the_upstream_connection_and_keeps_the_partial_answer() -> None:
    async with harness() as h:
        h.llm.script(["Partial words ", Pause(asyncio.Event()), "never sent"])
        h.tg.private_text(USER, "long story please")
        await h.tg.wait_for(
            lambda c: any("Partial" in (x.params.get("text") or "") for x in c), timeout=10)
        h.tg.private_text(USER, "/stop")
        await asyncio.wait_for(h.llm.disconnected.wait(), 5)
        texts = await h.finals(USER, 1)
        assert texts[0].startswith("Partial words") and "Stopped" in texts[0]
        h.llm.reply("Next.")
        h.tg.private_text(USER, "go on")
        await h.finals(USER, 2)
        assert [m["content"] for m in h.llm.requests[-1]["messages"][1:]] == [
            "long story please", "Partial words", "go on"]


async def test_draft_stop_button_stops_the_answer() -> None:
    async with harness() as h:
        h.llm.script(["Thinking aloud ", Pause(asyncio.Event())])
        h.tg.private_text(USER, "go")
        await h.tg.wait_for(lambda c: any(
            x.method == "sendMessageDraft" and x.params.get("text") for x in c), timeout=10)
        draft = next(c for c in h.tg.calls_to("sendMessageDraft") if c.params.get("text"))
        assert draft.params.get("can_stop") in (True, "true")
        h.tg.stopped_generation(USER, int(draft.params["draft_id"]))
        await asyncio.wait_for(h.llm.disconnected.wait(), 5)
        texts = await h.finals(USER, 1)
        assert texts[0].startswith("Thinking aloud") and "Stopped" in texts[0]


async def test_inline_stop_button_on_edited_messages() -> None:
    async with harness() as h:
        h.llm.script(["Group text ", Pause(asyncio.Event())])
        h.tg.group_text(GROUP, USER, "@testbot go")
        await h.tg.wait_for(lambda c: h.tg.messages(GROUP) and any(
            m.reply_markup for m in h.tg.messages(GROUP).values()), timeout=10)
        mid, msg = next((k, m) for k, m in h.tg.messages(GROUP).items() if m.reply_markup)
        data = msg.reply_markup["inline_keyboard"][0][0]["callback_data"]
        h.tg.callback_query(USER, GROUP, mid, data)
        await asyncio.wait_for(h.llm.disconnected.wait(), 5)
        texts = await h.finals(GROUP, 1)
        assert "Stopped" in texts[0]
        assert not h.tg.messages(GROUP)[mid].reply_markup  # the button is gone at the end


async def test_retry_regenerates_the_last_answer() -> None:
    async with harness() as h:
        h.llm.reply("Version one.")
        h.tg.private_text(USER, "a question")
        await h.finals(USER, 1)
        h.llm.reply("Version two.")
        h.tg.private_text(USER, "/retry")
        await h.finals(USER, 2)
        assert user_contents(h.llm.requests[-1]) == ["a question"]
        h.llm.reply("Three.")
        h.tg.private_text(USER, "next")
        await h.finals(USER, 3)
        contents = [m["content"] for m in h.llm.requests[-1]["messages"][1:]]
        assert contents == ["a question", "Version two.", "next"]


async def test_model_lists_and_admins_switch() -> None:
    async with harness(admin_user_ids=str(USER)) as h:
        h.llm.models = ["fake-model", "other-model"]
        h.tg.private_text(USER, "/model")
        await h.tg.wait_for(lambda c: any("other-model" in t for t in h.tg.texts(USER)))
        h.tg.private_text(USER, "/model other-model")
        await h.tg.wait_for(lambda c: any("conversation: other-model" in t
                                          for t in h.tg.texts(USER)))
        h.llm.reply("From the other model.")
        h.tg.private_text(USER, "hi")
        await h.finals(USER, 3)
        assert h.llm.requests[-1]["model"] == "other-model"


async def test_non_admin_cannot_switch_model_or_system_prompt() -> None:
    async with harness() as h:
        h.tg.private_text(USER, "/model other-model")
        h.tg.private_text(USER, "/system be rude")
        await h.tg.wait_for(lambda c: len(h.tg.texts(USER)) >= 2)
        assert all("Only admins" in t for t in h.tg.texts(USER))
