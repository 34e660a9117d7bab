"""/healthz and /metrics through real HTTP, with the bot polling the fake Bot API."""

from __future__ import annotations

import json

import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.config import ConfigError
from bot.web import parse_listen
from tests.deploy.harness import TOKEN, USER, running
from tests.e2e.harness import Harness
from tests.fakes.llm import FakeLLM
from tests.fakes.telegram import FakeTelegram


def samples(page: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    return {
        (s.name, frozenset(s.labels.items())): s.value
        for family in text_string_to_metric_families(page) for s in family.samples
    }


def value(page: str, name: str, **labels: str) -> float:
    return samples(page).get((name, frozenset(labels.items())), 0.0)


async def test_healthz_is_ok_once_polling_and_reports_why_not() -> None:
    async with FakeTelegram(token=TOKEN) as tg, \
            FakeLLM() as llm, running(tg, llm) as bot:
        status, text = await bot.get("/healthz")
        body = json.loads(text)
        assert status == 200, body
        assert body["status"] == "ok" and body["mode"] == "polling" and body["storage"] is True

        async def broken_ping() -> bool:
            return False

        real_ping = bot.app.store.ping
        bot.app.store.ping = broken_ping  # type: ignore[method-assign]
        status, text = await bot.get("/healthz")
        assert status == 503 and "storage does not answer" in json.loads(text)["problems"]
        bot.app.store.ping = real_ping  # type: ignore[method-assign]

        live = bot.app.metrics.liveness
        assert live.last_ok is not None
        live.last_ok -= live.max_silence + 1  # as if getUpdates had failed for that long
        status, text = await bot.get("/healthz")
        assert status == 503
        assert any("no contact with Telegram" in p for p in json.loads(text)["problems"])


async def test_metrics_after_one_answer() -> None:
    async with FakeTelegram(token=TOKEN) as tg, \
            FakeLLM() as llm, running(tg, llm) as bot:
        h = Harness(tg, llm, bot.app)
        llm.reply("Counted " + "word " * 30, chunk_chars=6)
        tg.private_text(USER, "hello")
        await h.finals(USER)
        status, page = await bot.get("/metrics")
        assert status == 200

    assert value(page, "llmbot_answers_started_total") == 1
    assert value(page, "llmbot_answers_finished_total") == 1
    assert not any(n == "llmbot_answers_failed_total" for n, _ in samples(page))
    assert value(page, "llmbot_answer_first_visible_seconds_count") == 1
    assert value(page, "llmbot_answer_duration_seconds_count") == 1
    assert value(page, "llmbot_telegram_calls_total", method="sendMessage", outcome="ok") == 1
    assert value(page, "llmbot_telegram_calls_total", method="getMe", outcome="ok") >= 1
    assert value(page, "llmbot_telegram_calls_total", method="sendMessageDraft", outcome="ok") >= 1
    assert value(page, "llmbot_llm_tokens_total", direction="in") > 0
    assert value(page, "llmbot_llm_tokens_total", direction="out") > 0
    assert value(page, "llmbot_updates_total", type="message") == 1
    assert value(page, "llmbot_active_streams") == 0
    assert 0 < value(page, "llmbot_interim_frame_share") <= 1
    assert 0 < value(page, "llmbot_update_intake_share") <= 1
    assert value(page, "llmbot_updates_waiting") == 0
    assert any(n == "llmbot_event_loop_lag_seconds" for n, _ in samples(page))


async def test_failed_answers_and_429s_are_counted() -> None:
    async with FakeTelegram(token=TOKEN) as tg, \
            FakeLLM() as llm, running(tg, llm, llm_max_retries=0) as bot:
        h = Harness(tg, llm, bot.app)
        llm.fail_next(401, {"error": {"message": "bad key", "type": "invalid_request_error"}})
        tg.fail_next("sendMessageDraft", 429, "Too Many Requests: retry after 1", retry_after=1)
        tg.private_text(USER, "hello")
        texts = await h.finals(USER)
        assert "401" in texts[0]
        _, page = await bot.get("/metrics")

    assert value(page, "llmbot_answers_started_total") == 1
    assert value(page, "llmbot_answers_failed_total", reason="http_401") == 1
    assert value(page, "llmbot_answers_finished_total") == 0
    assert value(page, "llmbot_llm_errors_total", kind="http_401") == 1
    assert value(page, "llmbot_telegram_429_total", method="sendMessageDraft") == 1
    assert value(page, "llmbot_telegram_calls_total", method="sendMessageDraft",
                 outcome="retry_after") == 1


@pytest.mark.parametrize(("raw", "parsed"), [
    ("0.0.0.0:8080", ("0.0.0.0", 8080)), (":8443", ("0.0.0.0", 8443)),
    ("127.0.0.1:0", ("127.0.0.1", 0)), ("[::]:8080", ("::", 8080)),
    ("bot.internal:80", ("bot.internal", 80)),
])
def test_listen_addresses(raw: str, parsed: tuple[str, int]) -> None:
    assert parse_listen(raw, "HTTP_LISTEN") == parsed


@pytest.mark.parametrize("raw", ["8080", "host:", "host:99999", "http://x:80", "a b:1"])
def test_bad_listen_addresses_name_the_setting(raw: str) -> None:
    with pytest.raises(ConfigError, match="HTTP_LISTEN is invalid"):
        parse_listen(raw, "HTTP_LISTEN")


async def test_runner_settles_the_heap_once_started() -> None:
    """Start-up's objects frozen out of the collector, young collections spaced (bot/heap.py)."""
    import gc

    from bot import heap

    before = gc.get_threshold()
    gc.unfreeze()
    gc.set_threshold(700, 10, before[2])
    try:
        async with FakeTelegram(token=TOKEN) as tg, FakeLLM() as llm, running(tg, llm):
            assert gc.get_threshold() == (heap.YOUNG_THRESHOLD, heap.MIDDLE_THRESHOLD, before[2])
            assert gc.get_freeze_count() > 0
    finally:
        gc.set_threshold(*before)
