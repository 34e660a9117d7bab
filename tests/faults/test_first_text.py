"""An answer's first text is sent by the task that read it from the model, not handed to the
pump task (one turn of the event loop less, which under load is tens of ms); and since that
task is the one a stop cancels, a stop waits for that call to come back."""

from __future__ import annotations

import asyncio
from typing import Any

from aiogram import Bot
from aiogram.client.session.middlewares.base import BaseRequestMiddleware
from aiogram.methods import SendMessageDraft

from bot.storage import ConversationKey
from tests.fakes.clock import settle
from tests.fakes.llm import Pause

from .rig import USER, rig


class DraftCalls(BaseRequestMiddleware):
    """Every sendMessageDraft with text: the task that made it, and how the call ended."""

    def __init__(self) -> None:
        self.calls: list[dict[str, str]] = []

    async def __call__(self, make_request: Any, bot: Bot, method: Any) -> Any:
        if not (isinstance(method, SendMessageDraft) and method.text):
            return await make_request(bot, method)
        task = asyncio.current_task()
        call = {"text": method.text, "task": task.get_name() if task else "", "end": "pending"}
        self.calls.append(call)
        try:
            result = await make_request(bot, method)
        except asyncio.CancelledError:
            call["end"] = "cancelled"
            raise
        call["end"] = "answered"
        return result


async def test_the_first_text_is_sent_by_the_task_that_read_it() -> None:
    async with rig() as r:
        drafts = DraftCalls()
        r.app.bot.session.middleware(drafts)
        more, end = asyncio.Event(), asyncio.Event()
        r.llm.script(["First words", Pause(more), " and more", Pause(end), "."])
        r.tg.private_text(USER, "hello")
        await r.drafted(USER, "First words")
        more.set()
        await r.drafted(USER, "First words and more")
        end.set()
        assert await r.finals(USER) == ["First words and more."]
        first, *later = drafts.calls
        assert first["text"] == "First words" and first["task"] != "answer-pump"
        assert later and {c["task"] for c in later} == {"answer-pump"}  # the rest: the pump's


async def test_a_stop_while_the_first_text_is_out_waits_for_its_answer() -> None:
    async with rig() as r:
        drafts = DraftCalls()
        r.app.bot.session.middleware(drafts)
        held: list[dict[str, Any]] = []
        release = asyncio.Event()

        async def hold_first_text(method: str, params: dict[str, Any]) -> None:
            if method == "sendMessageDraft" and params.get("text") and not held:
                held.append(params)
                await release.wait()  # Telegram shows it; its answer is on the way back

        r.tg.on_call = hold_first_text
        stopped = asyncio.Event()
        stop = r.app.chat.stop

        async def stop_and_tell(key: ConversationKey) -> bool:
            try:
                return await stop(key)
            finally:
                stopped.set()

        r.app.chat.stop = stop_and_tell  # type: ignore[method-assign]
        r.llm.script(["First words", Pause(asyncio.Event())])  # the model would go on
        r.tg.private_text(USER, "hello")
        await r.tg.wait_for(lambda _calls: bool(held))
        r.tg.stopped_generation(USER, int(held[0]["draft_id"]))  # the user pressed Stop on it
        await asyncio.wait_for(stopped.wait(), 10)
        await settle()  # a cancel would have reached the call by now
        assert drafts.calls == [{"text": "First words", "task": drafts.calls[0]["task"],
                                 "end": "pending"}]
        release.set()
        texts = await r.finals(USER)
        assert texts[0].startswith("First words") and "Stopped" in texts[0]
        assert [c["end"] for c in drafts.calls] == ["answered"]  # not cut off in flight
        await asyncio.wait_for(r.llm.disconnected.wait(), 5)  # and the model was stopped
