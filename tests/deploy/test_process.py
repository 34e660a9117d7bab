"""`python -m bot` as a real process: start-up errors, the healthcheck command, SIGTERM."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from pathlib import Path

import pytest

from bot.services.notes import SHUTDOWN_NOTE
from tests.deploy.harness import SECRET, TOKEN, USER, free_port
from tests.e2e.harness import API_KEY
from tests.fakes.llm import FakeLLM, Pause
from tests.fakes.telegram import FakeTelegram

ROOT = Path(__file__).resolve().parents[2]


def bot_env(**values: str) -> dict[str, str]:
    # Only what the test sets: no developer .env (cwd is a temporary folder), no stray settings.
    keep = {k: v for k, v in os.environ.items() if k in ("PATH", "HOME", "LANG", "SYSTEMROOT")}
    return {**keep, "PYTHONPATH": str(ROOT), "LOG_FORMAT": "json", **values}


async def run_bot(cwd: Path, *args: str, **env: str) -> tuple[int, str]:
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "bot", *args, cwd=cwd, env=bot_env(**env),
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.STDOUT)
    out, _ = await asyncio.wait_for(proc.communicate(), 30)
    assert proc.returncode is not None
    return proc.returncode, out.decode()


@pytest.mark.parametrize(("env", "message"), [
    ({}, "TELEGRAM_BOT_TOKEN is required"),
    ({"TELEGRAM_BOT_TOKEN": "nope"}, "TELEGRAM_BOT_TOKEN is invalid"),
    ({"TELEGRAM_BOT_TOKEN": TOKEN, "BOT_MODE": "webhook", "WEBHOOK_URL": "https://x.example/h"},
     "WEBHOOK_SECRET is required"),
    ({"TELEGRAM_BOT_TOKEN": TOKEN, "HTTP_LISTEN": "8080"}, "HTTP_LISTEN is invalid"),
    ({"TELEGRAM_BOT_TOKEN": TOKEN, "BOT_MODE": "webhook", "WEBHOOK_URL": "https://x.example/h",
      "WEBHOOK_SECRET": "has spaces"}, "WEBHOOK_SECRET is invalid"),
])
async def test_configuration_errors_exit_2_naming_the_variable(
    tmp_path: Path, env: dict[str, str], message: str,
) -> None:
    code, out = await run_bot(tmp_path, **env)
    assert code == 2
    assert out.strip() == f"configuration error: {message}" or message in out
    assert TOKEN.split(":")[1] not in out


async def test_sigterm_mid_answer_finalizes_it_removes_the_webhook_and_exits_0(
    tmp_path: Path,
) -> None:
    hook, ops = free_port(), free_port()
    env = {
        "TELEGRAM_BOT_TOKEN": TOKEN, "OPENAI_API_KEY": API_KEY, "ALLOWED_USER_IDS": str(USER),
        "STORAGE_URL": f"sqlite:///{tmp_path / 'data' / 'bot.sqlite3'}",
        "BOT_MODE": "webhook", "WEBHOOK_URL": f"http://127.0.0.1:{hook}/hook",
        "WEBHOOK_SECRET": SECRET, "WEBHOOK_LISTEN": f"127.0.0.1:{hook}",
        "HTTP_LISTEN": f"127.0.0.1:{ops}", "SHUTDOWN_GRACE": "0.5",
    }
    (tmp_path / "data").mkdir()
    log = (tmp_path / "bot.log").open("wb")
    async with FakeTelegram(token=TOKEN) as tg, FakeLLM() as llm:
        env |= {"TELEGRAM_API_URL": tg.base_url, "OPENAI_BASE_URL": llm.base_url}
        proc = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", cwd=tmp_path, env=bot_env(**env),
            stdout=log, stderr=log)
        try:
            await tg.wait_for(lambda calls: tg.webhook_url, timeout=30)
            code, out = await run_bot(tmp_path, "healthcheck", HTTP_LISTEN=env["HTTP_LISTEN"])
            assert code == 0 and '"status": "ok"' in out

            never = asyncio.Event()
            llm.script(["The first half of an answer ", Pause(never)])
            tg.private_text(USER, "tell me everything")
            await tg.wait_for(lambda calls: any(
                c.method == "sendMessageDraft" and c.params.get("text") for c in calls), 10)
            proc.send_signal(signal.SIGTERM)
            assert await asyncio.wait_for(proc.wait(), 30) == 0
        finally:
            if proc.returncode is None:
                proc.kill()
                await proc.wait()
            log.close()
        logged = (tmp_path / "bot.log").read_text()
        assert [text for text in tg.texts(USER)] == [
            f"The first half of an answer\n\n{SHUTDOWN_NOTE}"], logged
        assert tg.calls_to("deleteWebhook") and tg.webhook_url == "", logged
        assert '"event": "bot.stopped"' in logged

    code, out = await run_bot(tmp_path, "healthcheck", HTTP_LISTEN=env["HTTP_LISTEN"])
    assert code == 1 and "unhealthy" in out
