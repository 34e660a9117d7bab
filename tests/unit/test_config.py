"""Settings: one clear line naming the variable; URLs validated without echoing them."""

from __future__ import annotations

import pytest

from bot import eventloop
from bot.config import ConfigError, IdList, load_settings

TOKEN = "123456:" + "A" * 35


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch, tmp_path: object) -> None:
    import os

    for name in list(os.environ):
        if name.startswith(("TELEGRAM_", "OPENAI_", "LLM_", "STREAM_", "LIMIT_", "ALLOWED_",
                            "ADMIN_", "STORAGE_", "LOG_", "BOT_MODE", "WEBHOOK_", "EVENT_LOOP")):
            monkeypatch.delenv(name)
    monkeypatch.chdir(tmp_path)  # no stray .env


def test_missing_token_names_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^TELEGRAM_BOT_TOKEN is required"):
        load_settings()


@pytest.mark.parametrize("url", ["http://host:notaport/v1", "ftp://host/v1", "not a url",
                                 "https://user:s3cr3t@host:99999/v1"])
def test_bad_urls_are_refused_without_echoing_them(monkeypatch: pytest.MonkeyPatch,
                                                   url: str) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("OPENAI_BASE_URL", url)
    with pytest.raises(ConfigError) as err:
        load_settings()
    message = str(err.value)
    assert message.startswith("OPENAI_BASE_URL is invalid") and "\n" not in message
    assert url not in message and "s3cr3t" not in message


def test_id_lists_parse_commas_spaces_and_star() -> None:
    assert 5 in IdList.parse("1, 5 ,9") and 7 not in IdList.parse("1,5")
    assert 123 in IdList.parse("*") and not IdList.parse("")
    with pytest.raises(ValueError):
        IdList.parse("1,abc")


def test_webhook_mode_requires_its_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    monkeypatch.setenv("BOT_MODE", "webhook")
    with pytest.raises(ConfigError, match="WEBHOOK_URL"):
        load_settings()


def test_event_loop_is_uvloop_by_default_and_a_missing_uvloop_is_named(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    import sys

    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", TOKEN)
    assert eventloop.loop_factory(load_settings().runtime.event_loop)[0] == "uvloop"
    assert eventloop.run(_loop_module(), "auto") == "uvloop"
    assert eventloop.run(_loop_module(), "asyncio") == "asyncio"

    monkeypatch.setitem(sys.modules, "uvloop", None)  # as on Windows: `import uvloop` fails
    assert eventloop.loop_factory("auto") == ("asyncio", None)
    monkeypatch.setenv("EVENT_LOOP", "uvloop")
    with pytest.raises(ConfigError, match=r"^EVENT_LOOP=uvloop but uvloop is not installed$"):
        load_settings()


async def _loop_module() -> str:
    import asyncio

    return type(asyncio.get_running_loop()).__module__.partition(".")[0]
