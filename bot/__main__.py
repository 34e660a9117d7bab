"""`python -m bot`: settings → logging → app → polling or webhook, until SIGTERM/SIGINT.

`python -m bot healthcheck` asks the running bot's /healthz (the container HEALTHCHECK): exit 0
when healthy, 1 otherwise. It imports only the settings, not aiogram, so it stays cheap to run
every few seconds; the bot itself is imported lazily for that reason.
"""

from __future__ import annotations

import asyncio
import signal
import sys
import urllib.error
import urllib.request

from bot import eventloop
from bot.config import ConfigError, RuntimeSettings, Settings, load_settings

USAGE = "usage: python -m bot [healthcheck]"


def _secrets(settings: Settings) -> list[str]:
    out = [settings.telegram.telegram_bot_token.get_secret_value()]
    if settings.llm.openai_api_key:
        out.append(settings.llm.openai_api_key.get_secret_value())
    if settings.runtime.webhook_secret:
        out.append(settings.runtime.webhook_secret.get_secret_value())
    return out


async def serve(settings: Settings) -> None:
    import structlog

    from bot.app import build_app
    from bot.runner import Runner

    log = structlog.get_logger("bot")
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()

    def on_signal(sig: signal.Signals) -> None:
        if stop.is_set():
            log.warning("shutdown.already_stopping", signal=sig.name)
            return
        log.info("shutdown.signal", signal=sig.name)
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, on_signal, sig)
    app = await build_app(settings)
    try:
        await Runner(app).run(stop)
    finally:
        await app.close()
        log.info("bot.stopped")


def healthcheck() -> int:
    try:
        listen = RuntimeSettings().http_listen
    except Exception as exc:  # a bad setting: the bot itself will not be running either
        print(f"unhealthy: {exc}", file=sys.stderr)
        return 1
    if not listen:
        print("HTTP_LISTEN is off: nothing to check")
        return 0
    host, _, port = listen.strip().rpartition(":")  # validated by the bot at start-up
    host = {"": "127.0.0.1", "0.0.0.0": "127.0.0.1", "[::]": "[::1]"}.get(host, host)
    url = f"http://{host}:{port}/healthz"
    try:
        with urllib.request.urlopen(url, timeout=5) as response:
            print(response.read().decode())
            return 0
    except urllib.error.HTTPError as exc:
        print(f"unhealthy: {exc.code} {exc.read().decode()}", file=sys.stderr)
    except OSError as exc:
        print(f"unhealthy: {url}: {exc}", file=sys.stderr)
    return 1


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args == ["healthcheck"]:
        return healthcheck()
    if args:
        print(USAGE, file=sys.stderr)
        return 2
    try:
        settings = load_settings()
        from bot.web import check_runtime

        check_runtime(settings)
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    from aiogram.exceptions import TelegramUnauthorizedError

    from bot.logs import setup_logging

    setup_logging(settings.runtime.log_level, settings.runtime.log_format, _secrets(settings))
    try:
        eventloop.run(serve(settings), settings.runtime.event_loop)
    except TelegramUnauthorizedError:
        print("configuration error: Telegram rejected TELEGRAM_BOT_TOKEN (401 Unauthorized)",
              file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
