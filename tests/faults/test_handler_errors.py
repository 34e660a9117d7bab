"""An exception in one handler never stops the bot or other chats: it is logged with context and
the user gets a short apology."""

from __future__ import annotations

from typing import Any

import pytest

from bot.services.failure import APOLOGY
from bot.storage import ConversationKey, Turn

from .rig import OTHER, USER, rig


async def test_exception_in_one_handler_apologises_and_the_bot_goes_on(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with rig() as r:
        store = r.app.store
        real_history = store.history

        async def broken_for_user(key: ConversationKey) -> list[Turn]:
            if key.chat_id == USER:
                raise RuntimeError("storage exploded")
            return await real_history(key)

        monkeypatch.setattr(store, "history", broken_for_user)
        r.llm.reply("Other chat is fine.")
        r.tg.private_text(USER, "this one breaks")
        r.tg.private_text(OTHER, "this one works")
        assert await r.finals(USER) == [APOLOGY]
        assert await r.finals(OTHER) == ["Other chat is fine."]

        [event] = r.logs.events("handler.failed")
        assert event["chat_id"] == USER and event["update_id"] == 1
        assert event["error_type"] == "RuntimeError" and event["level"] == "error"
        assert "Traceback" in event["exception"]  # the stack trace goes to the log only
        assert "storage exploded" not in str(r.tg.texts(USER))

        monkeypatch.setattr(store, "history", real_history)
        r.llm.reply("Back to normal.")
        r.tg.private_text(USER, "and now?")
        assert await r.finals(USER, 2) == [APOLOGY, "Back to normal."]


async def test_apology_that_cannot_be_sent_is_logged_not_raised(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    async with rig() as r:
        async def boom(*_: Any) -> Any:
            raise RuntimeError("boom")

        monkeypatch.setattr(r.app.store, "history", boom)
        r.tg.fail_next("sendMessage", 400, "Bad Request: chat not found")
        r.tg.private_text(USER, "hi")
        await r.tg.wait_for(lambda calls: any(c.error_code == 400 for c in calls))
        await r.idle()
        assert r.logs.events("handler.apology_failed")
        assert "Cause exception" not in r.logs.text  # handled here, not by aiogram
