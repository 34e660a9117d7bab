"""structlog setup: key-value events, JSON or console, and secrets scrubbed from every line.

Redaction works on values, not key names: the token can hide inside a URL in a library's error
message, so every string that reaches a log line is scrubbed of each known secret.
"""

from __future__ import annotations

import logging
import re
import sys
from collections.abc import Iterable, MutableMapping
from typing import Any

import structlog

REDACTED = "***"
# A bot token has this shape wherever it appears (also in other bots' tokens pasted by users).
_TOKEN_RE = re.compile(r"\b\d{5,}:[A-Za-z0-9_-]{30,}\b")


class Redactor:
    def __init__(self, secrets: Iterable[str] = ()) -> None:
        self._secrets = sorted({s for s in secrets if s and len(s) >= 6}, key=len, reverse=True)

    def scrub(self, text: str) -> str:
        for secret in self._secrets:
            if secret in text:
                text = text.replace(secret, REDACTED)
        return _TOKEN_RE.sub(REDACTED, text)

    def _value(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.scrub(value)
        if isinstance(value, dict):
            return {k: self._value(v) for k, v in value.items()}
        if isinstance(value, list | tuple):
            return type(value)(self._value(v) for v in value)
        if isinstance(value, BaseException):
            return self.scrub(repr(value))
        return value

    def __call__(
        self, _logger: Any, _name: str, event: MutableMapping[str, Any]
    ) -> MutableMapping[str, Any]:
        for key, value in list(event.items()):
            event[key] = self._value(value)
        return event


def setup_logging(level: str, fmt: str, secrets: Iterable[str] = (), stream: Any = None) -> None:
    stream = stream or sys.stderr
    redactor = Redactor(secrets)
    if fmt == "auto":
        fmt = "console" if getattr(stream, "isatty", lambda: False)() else "json"
    renderer: Any = (
        structlog.processors.JSONRenderer(ensure_ascii=False)
        if fmt == "json" else structlog.dev.ConsoleRenderer(colors=False)
    )
    shared: list[Any] = [
        structlog.contextvars.merge_contextvars,
        structlog.stdlib.add_log_level,
        structlog.stdlib.add_logger_name,
        structlog.processors.TimeStamper(fmt="iso", utc=True),
        structlog.processors.format_exc_info,
        redactor,
    ]
    structlog.configure(
        processors=[*shared, structlog.stdlib.ProcessorFormatter.wrap_for_formatter],
        logger_factory=structlog.stdlib.LoggerFactory(),
        wrapper_class=structlog.make_filtering_bound_logger(logging.getLevelName(level)),
        cache_logger_on_first_use=False,
    )
    # Libraries (aiogram, httpx, aiohttp) log through stdlib: same format, same scrubbing.
    formatter = structlog.stdlib.ProcessorFormatter(
        foreign_pre_chain=shared,
        processors=[structlog.stdlib.ProcessorFormatter.remove_processors_meta, redactor, renderer],
    )
    handler = logging.StreamHandler(stream)
    handler.setFormatter(formatter)
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # httpx logs every request URL at INFO; aiogram's per-update lines are noise at INFO.
    logging.getLogger("httpx").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    logging.getLogger("aiogram.event").setLevel(max(logging.WARNING, logging.getLevelName(level)))
    # At DEBUG markdown-it logs every block rule it tries.
    logging.getLogger("markdown_it").setLevel(max(logging.INFO, logging.getLevelName(level)))
