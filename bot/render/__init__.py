"""Markdown → Telegram text + entities, split into pages. Pure functions, no I/O."""

from .markdown import render_markdown
from .reasoning import ReasoningDisplay
from .split import split_rendered
from .stream import TELEGRAM_TEXT_LIMIT, MarkdownStream
from .types import Entity, Rendered
from .utf16 import prefix_within, utf16_len

__all__ = [
    "TELEGRAM_TEXT_LIMIT",
    "Entity",
    "MarkdownStream",
    "ReasoningDisplay",
    "Rendered",
    "prefix_within",
    "render_markdown",
    "split_rendered",
    "utf16_len",
]
