"""Incremental rendering of a streamed answer into Telegram-sized pages.

Placeholder plain-text renderer for the streaming spine; the Markdown renderer replaces the
internals behind the same interface.
"""

from __future__ import annotations

from .types import Rendered
from .utf16 import prefix_within, utf16_len

TELEGRAM_TEXT_LIMIT = 4096


class MarkdownStream:
    """Accumulates answer deltas; `pages()` renders what has arrived so far.

    Contract with the transport: every page but the last is final once it exists (its text and
    entities never change as more deltas arrive), and each page fits in `limit` UTF-16 units.
    """

    def __init__(self, limit: int = TELEGRAM_TEXT_LIMIT) -> None:
        self._limit = limit
        self._source: list[str] = []
        self._text = ""

    @property
    def source(self) -> str:
        return self._text

    @property
    def thinking(self) -> bool:
        """True while only reasoning (no answer text) has arrived."""
        return False

    def feed(self, delta: str) -> None:
        self._text += delta

    def feed_reasoning(self, delta: str) -> None:
        """Reasoning is not shown by the plain renderer."""

    def pages(self) -> list[Rendered]:
        return self._split(self._text.lstrip())

    def finish(self) -> list[Rendered]:
        return [p for p in self._split(self._text.strip()) if not p.empty]

    def _split(self, text: str) -> list[Rendered]:
        pages: list[Rendered] = []
        while utf16_len(text) > self._limit:
            cut = prefix_within(text, self._limit)
            space = text.rfind("\n", 0, cut)
            if space <= 0:
                space = text.rfind(" ", 0, cut)
            if space > 0:
                cut = space
            pages.append(Rendered(text[:cut].rstrip()))
            text = text[cut:].lstrip()
        pages.append(Rendered(text))
        return pages
