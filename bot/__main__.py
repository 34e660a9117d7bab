"""`python -m bot`: settings → logging → app → polling, until SIGTERM/SIGINT."""

from __future__ import annotations

import asyncio
import sys

import structlog

from bot.app import build_app
from bot.config import ConfigError, Settings, load_settings
from bot.logs import setup_logging


def _secrets(settings: Settings) -> list[str]:
    out = [settings.telegram.telegram_bot_token.get_secret_value()]
    if settings.llm.openai_api_key:
        out.append(settings.llm.openai_api_key.get_secret_value())
    if settings.runtime.webhook_secret:
        out.append(settings.runtime.webhook_secret.get_secret_value())
    return out


async def run(settings: Settings) -> None:
    log = structlog.get_logger("bot")
    app = await build_app(settings)
    try:
        await app.prepare()
        dp = app.dispatcher

        async def on_shutdown() -> None:
            await app.drain(settings.runtime.shutdown_grace)

        dp.shutdown.register(on_shutdown)
        await dp.start_polling(app.bot, handle_signals=True, close_bot_session=False,
                               allowed_updates=dp.resolve_used_update_types())
    finally:
        await app.close()
        log.info("bot.stopped")


def main() -> int:
    try:
        settings = load_settings()
    except ConfigError as exc:
        print(f"configuration error: {exc}", file=sys.stderr)
        return 2
    setup_logging(settings.runtime.log_level, settings.runtime.log_format, _secrets(settings))
    try:
        asyncio.run(run(settings))
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
