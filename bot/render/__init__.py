"""Markdown → Telegram text + entities, split into pages. Pure functions, no I/O."""

from .stream import TELEGRAM_TEXT_LIMIT, MarkdownStream
from .types import Entity, Rendered
from .utf16 import prefix_within, utf16_len

__all__ = [
    "TELEGRAM_TEXT_LIMIT", "Entity", "MarkdownStream", "Rendered", "prefix_within", "utf16_len",
]
