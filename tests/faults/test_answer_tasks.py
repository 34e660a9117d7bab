"""An answer runs in a task of its own: the update that asked for it is let go at once, and the
conversation's queue, shutdown and failures work as when the handler waited for the answer."""

from __future__ import annotations

import asyncio
import gc

import pytest
from aiogram.types import Message, Update

from bot.services.chat import Prompt
from bot.services.gate import ConversationBusy
from bot.storage import ConversationKey
from bot.transport.target import ChatTarget
from tests.fakes.llm import Pause

from .rig import OTHER, USER, rig


def alive(kind: type, text: str) -> list[object]:
    gc.collect()
    found: list[object] = []
    for obj in gc.get_objects():
        if type(obj) is kind:
            message = obj.message if isinstance(obj, Update) else obj
            if isinstance(message, Message) and message.text == text:
                found.append(obj)
    return found


async def test_the_update_is_not_held_while_its_answer_streams() -> None:
    async with rig() as r:
        done = asyncio.Event()
        r.llm.script(["Streaming ", Pause(done), "on."])
        r.tg.private_text(USER, "a question to find in memory")
        await r.drafted(USER, "Streaming")
        # The answer is under way; the update's handling is over and nothing keeps it.
        assert len(r.app.chat.tasks) == 1 and r.app.chat.active_count == 1
        assert not [t for t in r.app.dispatcher._handle_update_tasks if not t.done()]
        # Two bounded holders remain, both aiogram's: polling keeps the last getUpdates batch
        # until the next one arrives, and `Update.event_type` caches its last 128 updates.
        r.tg.private_text(OTHER, "/help")
        await r.tg.wait_for(lambda calls: any(
            c.method == "sendMessage" and c.params.get("chat_id") == OTHER for c in calls))
        Update.event_type.fget.cache_clear()  # type: ignore[attr-defined]
        assert alive(Update, "a question to find in memory") == []
        assert alive(Message, "a question to find in memory") == []
        done.set()
        assert await r.finals(USER) == ["Streaming on."]
        assert not r.app.chat.tasks


async def test_an_answer_cancelled_before_it_starts_gives_its_place_in_the_queue_back() -> None:
    async with rig(queue_max=1) as r:  # one answer running and one waiting; a third is busy
        key, target = ConversationKey(USER), ChatTarget(USER)
        task = r.app.chat.submit(Prompt(key=key, target=target, text="first"))
        task.cancel()  # before its first step: it never got to wait for its turn
        await asyncio.wait({task}, timeout=5)
        assert task.cancelled() and not r.app.chat.tasks
        # Had its place leaked, the third would be turned away as busy.
        second = r.app.chat.submit(Prompt(key=key, target=target, text="second"))
        third = r.app.chat.submit(Prompt(key=key, target=target, text="third"))
        with pytest.raises(ConversationBusy):  # and the queue is still bounded
            r.app.chat.submit(Prompt(key=key, target=target, text="fourth"))
        await asyncio.wait_for(asyncio.gather(second, third), 10)
        assert await r.finals(USER, 2) == ["You said: second", "You said: third"]
