"""The bot's own HTTP side: /healthz and /metrics for operators, the webhook route for Telegram.

Operators and Telegram get separate listeners (HTTP_LISTEN, WEBHOOK_LISTEN) so that a reverse
proxy publishing the webhook never publishes /metrics; the same address serves both.
"""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any

import structlog
from aiogram import Bot, Dispatcher
from aiogram.webhook.aiohttp_server import SimpleRequestHandler
from aiohttp import web

from bot.app import App
from bot.config import ConfigError, Settings
from bot.metrics import CONTENT_TYPE_LATEST, Metrics

log = structlog.get_logger(__name__)

# A storage ping slower than this counts as a failure: the container is not healthy.
STORAGE_PING_TIMEOUT = 3.0
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"


def parse_listen(value: str, name: str) -> tuple[str, int]:
    """`host:port`, `[v6]:port` or `:port` (all interfaces) → (host, port)."""
    m = re.fullmatch(r"\s*(\[[0-9a-fA-F:.]+\]|[^\s:\[\]]*):(\d{1,5})\s*", value)
    if not m or int(m.group(2)) > 65535:
        raise ConfigError(f"{name} is invalid: expected host:port, got {value!r}")
    return m.group(1).strip("[]") or "0.0.0.0", int(m.group(2))


def check_runtime(settings: Settings) -> None:
    """What config.py leaves to the HTTP side: listen addresses and the secret's alphabet
    (Telegram refuses setWebhook otherwise, too late and less clearly)."""
    rt = settings.runtime
    if rt.http_listen:
        parse_listen(rt.http_listen, "HTTP_LISTEN")
    if rt.bot_mode == "webhook":
        parse_listen(rt.webhook_listen, "WEBHOOK_LISTEN")
        secret = rt.webhook_secret.get_secret_value() if rt.webhook_secret else ""
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,256}", secret):
            raise ConfigError("WEBHOOK_SECRET is invalid: use 1-256 characters of A-Z a-z 0-9 _ -")


async def health(app: App) -> tuple[bool, dict[str, Any]]:
    """Healthy when this loop answers (it runs this), storage pings, and Telegram was heard
    from within `max_silence` seconds (getMe/getUpdates, or a webhook delivery/probe)."""
    try:
        async with asyncio.timeout(STORAGE_PING_TIMEOUT):
            storage_ok = await app.store.ping()
    except TimeoutError:
        storage_ok = False
    live = app.metrics.liveness
    age = live.age()
    problems = []
    if not storage_ok:
        problems.append("storage does not answer")
    if age is None:
        problems.append("starting: Telegram not reached yet")
    elif not live.fresh():
        problems.append(f"no contact with Telegram for {age:.0f} s")
    body: dict[str, Any] = {
        "status": "ok" if not problems else "unhealthy",
        "mode": app.settings.runtime.bot_mode,
        "storage": storage_ok,
        "telegram_silence_seconds": None if age is None else round(age, 1),
        "max_silence_seconds": live.max_silence,
        "answers_in_flight": app.chat.active_count,
    }
    if problems:
        body["problems"] = problems
    return not problems, body


def add_ops_routes(web_app: web.Application, app: App) -> None:
    async def healthz(request: web.Request) -> web.Response:
        ok, body = await health(app)
        return web.json_response(body, status=200 if ok else 503)

    async def metrics(request: web.Request) -> web.Response:
        return web.Response(body=app.metrics.render(),
                            headers={"Content-Type": CONTENT_TYPE_LATEST})

    web_app.router.add_get("/healthz", healthz)
    web_app.router.add_get("/metrics", metrics)


class WebhookHandler(SimpleRequestHandler):
    """aiogram's handler (a missing or wrong secret header gets 401 before anything is read),
    answering Telegram at once while the update runs as a task where `App.drain` looks for
    updates in flight, like polling's."""

    def __init__(self, dispatcher: Dispatcher, bot: Bot, secret: str, metrics: Metrics) -> None:
        super().__init__(dispatcher, bot, handle_in_background=True, secret_token=secret)
        self._metrics = metrics

    async def handle(self, request: web.Request) -> web.Response:
        response = await super().handle(request)
        ok = response.status < 300
        self._metrics.webhook_requests.labels(
            "ok" if ok else "unauthorized" if response.status == 401 else "rejected").inc()
        if ok:
            self._metrics.liveness.mark()  # Telegram reaches us: updates can arrive
        else:
            log.warning("webhook.rejected", status=response.status,
                        remote=request.headers.get("X-Forwarded-For", request.remote))
        return response

    async def _handle_request_background(self, bot: Bot, request: web.Request) -> web.Response:
        try:
            update = await request.json(loads=bot.session.json_loads)
        except json.JSONDecodeError:
            return web.Response(status=400, text="Bad Request")
        task = asyncio.create_task(self._feed(bot, update))
        tasks = self.dispatcher._handle_update_tasks  # polling keeps its updates in flight here
        tasks.add(task)
        task.add_done_callback(tasks.discard)
        return web.json_response({})

    async def _feed(self, bot: Bot, update: dict[str, Any]) -> None:
        try:
            await self._background_feed_update(bot, update)
        except Exception:  # like polling: log it, the next update is unaffected
            log.exception("webhook.update_failed", update_id=update.get("update_id"))


def add_webhook_route(web_app: web.Application, app: App, path: str, secret: str) -> None:
    # Route only, not `handler.register`: that would close the bot session on server stop,
    # and the App owns the session.
    handler = WebhookHandler(app.dispatcher, app.bot, secret, app.metrics)
    web_app.router.add_post(path, handler.handle)


class Listener:
    """One aiohttp app on one address; `port` is the bound one (port 0 picks a free one)."""

    def __init__(self, web_app: web.Application, host: str, port: int) -> None:
        self.web_app, self.host, self._port = web_app, host, port
        self._runner: web.AppRunner | None = None

    @property
    def port(self) -> int:
        if self._runner is None:
            raise RuntimeError("listener is not running")
        return int(self._runner.addresses[0][1])

    @property
    def url(self) -> str:
        host = "127.0.0.1" if self.host in ("0.0.0.0", "::", "") else self.host
        return f"http://{host}:{self.port}"

    async def start(self) -> None:
        runner = web.AppRunner(self.web_app, access_log=None, shutdown_timeout=5.0)
        await runner.setup()
        await web.TCPSite(runner, self.host, self._port).start()
        self._runner = runner
        log.info("http.listening", address=f"{self.host}:{self.port}",
                 routes=sorted({r.resource.canonical for r in self.web_app.router.routes()
                                if r.resource is not None}))

    async def stop(self) -> None:
        runner, self._runner = self._runner, None
        if runner is not None:
            await runner.cleanup()
