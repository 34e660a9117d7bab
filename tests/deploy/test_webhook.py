"""Webhook mode end to end: the fake Bot API POSTs updates to the bot's own webhook server."""

from __future__ import annotations

from collections.abc import AsyncIterator

import aiohttp
import pytest
from prometheus_client.parser import text_string_to_metric_families

from bot.web import SECRET_HEADER
from tests.deploy.harness import SECRET, TOKEN, USER, free_port, running
from tests.e2e.harness import Harness
from tests.fakes.llm import FakeLLM
from tests.fakes.telegram import FakeTelegram

UPDATE = {"update_id": 900, "message": {
    "message_id": 1, "date": 0, "chat": {"id": USER, "type": "private"},
    "from": {"id": USER, "is_bot": False, "first_name": "U"}, "text": "sneaky"}}


@pytest.fixture
async def fakes() -> AsyncIterator[tuple[FakeTelegram, FakeLLM]]:
    async with FakeTelegram(token=TOKEN) as tg, FakeLLM() as llm:
        yield tg, llm


def webhook_settings(path: str = "/telegram/hook") -> dict[str, str]:
    port = free_port()
    return {"bot_mode": "webhook", "webhook_url": f"http://127.0.0.1:{port}{path}",
            "webhook_secret": SECRET, "webhook_listen": f"127.0.0.1:{port}"}


async def set_webhook(tg: FakeTelegram, url: str, secret: str) -> None:
    """As another client of the Bot API would: the fake's own HTTP interface."""
    async with aiohttp.ClientSession() as http, http.post(
        f"{tg.base_url}/bot{TOKEN}/setWebhook", json={"url": url, "secret_token": secret}
    ) as r:
        assert (await r.json())["ok"]


def webhook_requests(page: str, outcome: str) -> float:
    return sum(s.value for f in text_string_to_metric_families(page) for s in f.samples
               if s.name == "llmbot_webhook_requests_total" and s.labels["outcome"] == outcome)


async def test_updates_arrive_by_webhook_and_the_webhook_is_removed_on_stop(
    fakes: tuple[FakeTelegram, FakeLLM],
) -> None:
    tg, llm = fakes
    settings = webhook_settings()
    async with running(tg, llm, **settings) as bot:
        assert tg.webhook_url == settings["webhook_url"] and tg.webhook_secret == SECRET
        registered = tg.calls_to("setWebhook")[-1].params
        assert registered["drop_pending_updates"] is False
        assert "message" in registered["allowed_updates"]

        llm.reply("Delivered by webhook, answered by stream.", chunk_chars=5)
        tg.private_text(USER, "hello over https")
        assert await Harness(tg, llm, bot.app).finals(USER) == [
            "Delivered by webhook, answered by stream."]
        assert not tg.calls_to("getUpdates")  # no polling in webhook mode
        assert not tg.webhook_errors
        status, body = await bot.get("/healthz")
        assert status == 200 and '"mode": "webhook"' in body

    assert tg.calls_to("deleteWebhook")[-1].params.get("drop_pending_updates") is False
    assert tg.webhook_url == ""  # Telegram keeps later updates for the next start


async def test_missing_or_wrong_secret_is_refused_and_never_reaches_the_llm(
    fakes: tuple[FakeTelegram, FakeLLM],
) -> None:
    tg, llm = fakes
    settings = webhook_settings()
    url = settings["webhook_url"]
    async with running(tg, llm, **settings) as bot:
        async with aiohttp.ClientSession() as http:
            for headers in ({}, {SECRET_HEADER: "wrong"}, {SECRET_HEADER: SECRET[:-1]}):
                async with http.post(url, json=UPDATE, headers=headers) as r:
                    assert r.status == 401, headers

        # Telegram itself with a stale secret (e.g. set by an older deployment): refused, and
        # the update stays queued at Telegram rather than being lost.
        await set_webhook(tg, url, "stale-secret")
        tg.private_text(USER, "hello")
        await tg.wait_for(lambda calls: any("401" in e for e in tg.webhook_errors), timeout=10)
        assert not llm.requests
        assert not tg.calls_to("sendMessage", "sendMessageDraft")

        await set_webhook(tg, url, SECRET)
        llm.reply("Now it gets through.")
        assert await Harness(tg, llm, bot.app).finals(USER) == ["Now it gets through."]
        assert [r["messages"][-1]["content"] for r in llm.requests] == ["hello"]
        _, page = await bot.get("/metrics")
        assert webhook_requests(page, "unauthorized") >= 4
        assert webhook_requests(page, "ok") == 1


async def test_ops_and_webhook_can_share_one_address(fakes: tuple[FakeTelegram, FakeLLM]) -> None:
    tg, llm = fakes
    settings = webhook_settings(path="")
    settings["http_listen"] = settings["webhook_listen"]
    async with running(tg, llm, **settings) as bot:
        assert bot.runner.listeners["ops"] is bot.runner.listeners["webhook"]
        assert tg.webhook_url.endswith(settings["webhook_listen"].split(":")[1])
        status, _ = await bot.get("/healthz")
        assert status == 200
        tg.private_text(USER, "root path")
        assert await Harness(tg, llm, bot.app).finals(USER) == ["You said: root path"]




async def test_polling_removes_a_webhook_left_behind(fakes: tuple[FakeTelegram, FakeLLM]) -> None:
    tg, llm = fakes
    await set_webhook(tg, "https://old.example/hook", "old-secret")  # a crashed webhook run
    async with running(tg, llm) as bot:
        assert tg.webhook_url == ""
        tg.private_text(USER, "polling again")
        assert await Harness(tg, llm, bot.app).finals(USER) == ["You said: polling again"]


async def test_the_webhook_probe_keeps_health_only_while_the_webhook_is_ours(
    fakes: tuple[FakeTelegram, FakeLLM],
) -> None:
    tg, llm = fakes
    settings = webhook_settings()
    async with running(tg, llm, **settings) as bot:
        live = bot.app.metrics.liveness
        live.last_ok = None
        assert await bot.runner.probe_webhook(settings["webhook_url"])
        assert live.fresh()

        await set_webhook(tg, "https://someone-else.example/hook", "other")  # taken over
        live.last_ok = None
        assert not await bot.runner.probe_webhook(settings["webhook_url"])
        status, body = await bot.get("/healthz")
        assert status == 503 and "Telegram not reached" in body
