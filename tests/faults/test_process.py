"""The process: SIGTERM/SIGINT stop taking updates, drain and finalize answers in flight, close
everything and exit 0; after a restart on the same SQLite file no update is answered twice and
none that was accepted is lost. Start-up errors: one line naming the variable, within a second."""

from __future__ import annotations

import asyncio
import resource
import signal
import time
from pathlib import Path

import pytest

from bot.services.notes import SHUTDOWN_NOTE
from tests.fakes.llm import Pause
from tests.fakes.telegram import FakeTelegram

from .proc import bot_process
from .rig import API_KEY, OTHER, SECRETS, TOKEN, USER, WEBHOOK_SECRET, StampedLLM, leaked


async def test_signals_drain_finalize_and_a_restart_answers_each_update_once(
    tmp_path: Path,
) -> None:
    db = tmp_path / "data" / "bot.sqlite3"
    async with FakeTelegram(token=TOKEN) as tg, StampedLLM(api_key=API_KEY) as llm:
        env = {
            "TELEGRAM_BOT_TOKEN": TOKEN, "OPENAI_API_KEY": API_KEY,
            "WEBHOOK_SECRET": WEBHOOK_SECRET,
            "TELEGRAM_API_URL": tg.base_url, "OPENAI_BASE_URL": llm.base_url,
            "ALLOWED_USER_IDS": f"{USER},{OTHER}", "STORAGE_URL": f"sqlite:///{db}",
            "SHUTDOWN_GRACE": "0.5", "LOG_LEVEL": "DEBUG",
        }
        outputs: list[str] = []

        # 1st run: SIGTERM while an answer streams; a message arrives during the shutdown.
        async with bot_process(tmp_path, **env) as bot:
            ready = await bot.wait_event("bot.ready")
            assert ready["event_loop"] == "uvloop"  # the default where uvloop is installed
            llm.script(["The first half of an answer ", Pause(asyncio.Event())])
            first = tg.private_text(USER, "first question")
            await tg.wait_for(lambda calls: any(
                c.method == "sendMessageDraft" and "first half" in c.params.get("text", "")
                for c in calls), timeout=15)
            bot.signal(signal.SIGTERM)
            await bot.wait_event("shutdown.signal")
            tg.private_text(OTHER, "sent while the bot stops")
            assert await bot.exit_code() == 0, bot.output
            outputs.append(bot.output)
            assert bot.events("bot.stopped"), bot.output
        assert tg.texts(USER) == [f"The first half of an answer\n\n{SHUTDOWN_NOTE}"]
        assert llm.disconnects == 1  # the stream was closed: the provider stops generating

        # 2nd run, same SQLite file: Telegram re-sends the first update (its offset was not
        # confirmed, say) along with a new one; SIGINT once everything is answered.
        tg.push_update(first)
        tg.private_text(USER, "after the restart")
        env |= {"LOG_LEVEL": "INFO", "EVENT_LOOP": "asyncio"}  # and asyncio's own loop
        async with bot_process(tmp_path, **env) as bot:
            assert (await bot.wait_event("bot.ready"))["event_loop"] == "asyncio"
            await tg.wait_for(lambda calls: len(tg.texts(USER)) == 2 and tg.texts(OTHER),
                              timeout=30)
            await bot.wait_event("update.duplicate")
            bot.signal(signal.SIGINT)
            assert await bot.exit_code() == 0, bot.output
            outputs.append(bot.output)

        assert tg.texts(USER)[1] == "You said: after the restart"
        assert tg.texts(OTHER) == ["You said: sent while the bot stops"]  # accepted once, kept
        assert len(tg.calls_to("sendMessage")) == 3  # nothing answered twice
        history = next(b for b in llm.requests if b["messages"][-1]["content"] ==
                       "after the restart")["messages"]
        assert [m["content"] for m in history[1:3]] == [
            "first question", "The first half of an answer"]  # the partial turn survived
        everything = "\n".join([*outputs, str([c.params for c in tg.calls]), str(llm.requests)])
        assert not leaked(everything)
        assert "after the restart" not in outputs[1]  # INFO without LOG_CONTENT: no user text


@pytest.mark.parametrize(("env", "variable"), [
    ({}, "TELEGRAM_BOT_TOKEN"),
    ({"TELEGRAM_BOT_TOKEN": TOKEN.replace(":", " ")}, "TELEGRAM_BOT_TOKEN"),
    ({"TELEGRAM_BOT_TOKEN": TOKEN + " trailing junk"}, "TELEGRAM_BOT_TOKEN"),
    ({"TELEGRAM_BOT_TOKEN": TOKEN, "OPENAI_BASE_URL": "api.openai.com/v1"}, "OPENAI_BASE_URL"),
    ({"TELEGRAM_BOT_TOKEN": TOKEN, "TELEGRAM_API_URL": "ftp://api.telegram.org"},
     "TELEGRAM_API_URL"),
    ({"TELEGRAM_BOT_TOKEN": TOKEN, "STORAGE_URL": "postgres://db"}, "STORAGE_URL"),
    ({"TELEGRAM_BOT_TOKEN": TOKEN, "LLM_IDLE_TIMEOUT": "soon"}, "LLM_IDLE_TIMEOUT"),
    ({"TELEGRAM_BOT_TOKEN": TOKEN, "EVENT_LOOP": "trio"}, "EVENT_LOOP"),
])
async def test_bad_setting_exits_within_a_second_naming_it(
    tmp_path: Path, env: dict[str, str], variable: str,
) -> None:
    env = {"OPENAI_API_KEY": API_KEY, "WEBHOOK_SECRET": WEBHOOK_SECRET, **env}
    before, started = resource.getrusage(resource.RUSAGE_CHILDREN), time.monotonic()
    async with bot_process(tmp_path, **env) as bot:
        code = await bot.exit_code(timeout=10)
    elapsed = time.monotonic() - started
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    assert code != 0
    assert len(bot.lines) == 1 and variable in bot.lines[0], bot.output
    assert "Traceback" not in bot.output
    assert not leaked(bot.output) and SECRETS
    # Within a second: measured as the process's own CPU time, which a busy machine running
    # other test suites does not inflate (the wall clock only gets a loose bound).
    assert cpu < 1.0 and elapsed < 5, f"took {cpu:.2f} s of CPU, {elapsed:.2f} s in all"
