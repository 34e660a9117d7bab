"""How errors are classified for /metrics, and one registry per App."""

from __future__ import annotations

import asyncio

import pytest
from aiogram.exceptions import TelegramForbiddenError, TelegramRetryAfter
from aiogram.methods import SendMessage

from bot.llm import (
    LLMConnectionError,
    LLMError,
    LLMStatusError,
    LLMStreamError,
    LLMStreamingUnsupported,
    LLMTimeoutError,
)
from bot.metric_labels import failure_reason, llm_error_kind, telegram_outcome
from bot.metrics import Metrics
from bot.transport.outbound import ChatUnavailable
from tests.deploy.harness import TOKEN, USER, running
from tests.deploy.test_http import value
from tests.e2e.harness import Harness
from tests.fakes.llm import FakeLLM
from tests.fakes.telegram import FakeTelegram

METHOD = SendMessage(chat_id=1, text="x")


def status(code: int) -> LLMStatusError:
    return LLMStatusError("x", status_code=code, body="", retry_after=None)


@pytest.mark.parametrize(("error", "kind"), [
    (LLMTimeoutError("x"), "timeout"),
    (LLMConnectionError("x"), "connection"),
    (LLMStreamingUnsupported("x", status_code=400, body="", retry_after=None),
     "streaming_unsupported"),
    (status(401), "http_401"), (status(429), "http_429"), (status(418), "http_4xx"),
    (status(503), "http_5xx"), (LLMStreamError("x"), "stream"), (LLMError("x"), "other"),
])
def test_llm_error_kinds(error: LLMError, kind: str) -> None:
    assert llm_error_kind(error) == kind


def test_failure_reasons_follow_the_cause_chain() -> None:
    forbidden = TelegramForbiddenError(method=METHOD, message="Forbidden: bot was blocked")
    try:
        raise ChatUnavailable("blocked") from forbidden
    except ChatUnavailable as exc:
        assert failure_reason(exc) == "telegram"
    assert failure_reason(asyncio.CancelledError()) == "cancelled"
    assert failure_reason(ValueError("bug")) == "internal"
    assert failure_reason(status(500)) == "http_5xx"
    assert telegram_outcome(TelegramRetryAfter(method=METHOD, message="", retry_after=3)) \
        == "retry_after"
    assert telegram_outcome(forbidden) == "forbidden"


def test_each_metrics_object_has_its_own_registry() -> None:
    a, b = Metrics(), Metrics()
    a.answers_started.inc()
    assert b"llmbot_answers_started_total 1.0" in a.render()
    assert b"llmbot_answers_started_total 0.0" in b.render()


async def test_a_retried_llm_error_does_not_fail_the_answer() -> None:
    async with FakeTelegram(token=TOKEN) as tg, \
            FakeLLM() as llm, running(tg, llm, llm_max_retries=1) as bot:
        llm.fail_next(503)
        llm.reply("Second time lucky.")
        tg.private_text(USER, "hi")
        assert await Harness(tg, llm, bot.app).finals(USER) == ["Second time lucky."]
        page = bot.app.metrics.render().decode()
    assert value(page, "llmbot_llm_errors_total", kind="http_5xx") == 1
    assert value(page, "llmbot_answers_finished_total") == 1
    assert "llmbot_answers_failed_total{" not in page
