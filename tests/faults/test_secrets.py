"""Secrets and privacy: the token, API key and webhook secret never reach logs, errors or replies
(every rig test scans all of it on exit; here the faults most likely to leak them), and users'
words are logged only with LOG_CONTENT=true. URLs in settings are checked at start-up."""

from __future__ import annotations

from pathlib import Path

import pytest

from bot.config import ConfigError, load_settings

from .rig import API_KEY, TOKEN, USER, leaked, rig

QUESTION = "my-private-question-4711"
ANSWER = "a-private-answer-0815"


async def test_provider_echoing_the_api_key_in_an_error_reaches_nobody() -> None:
    async with rig(llm_max_retries=0) as r:
        r.llm.fail_next(401, body={"error": {
            "message": f"Incorrect API key provided: {API_KEY}. Find your key at ...",
            "type": "invalid_request_error", "code": "invalid_api_key"}})
        r.tg.private_text(USER, "hi")
        [text] = await r.finals(USER)
        assert text == ("⚠️ Sorry, no answer: the model endpoint rejected the API key "
                        "(HTTP 401). Please try again later.")
        [failed] = r.logs.events("llm.failed")
        assert "Incorrect API key provided: ***" in failed["error"]


async def test_a_token_in_a_telegram_error_description_is_redacted() -> None:
    async with rig() as r:
        r.tg.fail_next("sendMessage", 400, f"Bad Request: odd error for bot{TOKEN}")
        r.llm.reply("fine")
        r.tg.private_text(USER, "hi")
        await r.tg.wait_for(lambda calls: any(c.error_code == 400 for c in calls))
        await r.idle()
        assert r.logs.events("handler.failed")  # logged with context, token scrubbed (rig)


@pytest.mark.parametrize("level", ["INFO", "DEBUG"])
async def test_users_words_are_not_logged_by_default(level: str, tmp_path: Path) -> None:
    async with rig(log_level=level, storage_url=f"sqlite:///{tmp_path / 'b.sqlite3'}") as r:
        r.llm.reply(ANSWER)
        r.tg.private_text(USER, QUESTION)
        assert await r.finals(USER) == [ANSWER]
        assert r.logs.events("answer.done")
        assert QUESTION not in r.logs.text and ANSWER not in r.logs.text


async def test_log_content_true_logs_question_and_answer() -> None:
    async with rig(log_level="INFO", log_content=True) as r:
        r.llm.reply(ANSWER)
        r.tg.private_text(USER, QUESTION)
        await r.finals(USER)
        assert r.logs.events("answer.prompt")[0]["text"] == QUESTION
        assert r.logs.events("answer.done")[0]["text"] == ANSWER


@pytest.mark.parametrize(("name", "value"), [
    ("openai_base_url", "api.openai.com/v1"),
    ("openai_base_url", "ftp://example.com"),
    ("telegram_api_url", "telegram.local:8081"),
    ("telegram_api_url", "https://"),
])
def test_urls_in_settings_are_validated_at_start_up(name: str, value: str) -> None:
    with pytest.raises(ConfigError, match=name.upper()):
        load_settings(telegram_bot_token=TOKEN, **{name: value})


def test_webhook_url_is_validated_and_the_secret_never_echoed() -> None:
    with pytest.raises(ConfigError, match="WEBHOOK_URL") as err:
        load_settings(telegram_bot_token=TOKEN, bot_mode="webhook", webhook_url="not a url",
                      webhook_secret="whsec-faults-SECRET-42")
    assert not leaked(str(err.value))
