"""Accumulates rendered text and entities, counting offsets in UTF-16 units as it goes."""

from __future__ import annotations

from dataclasses import dataclass

from .entities import sort_key, strip, telegram_nesting
from .types import Entity, Rendered
from .utf16 import utf16_len


@dataclass(slots=True)
class _Open:
    type: str
    start: int | None  # set by the first write, so separators never land inside an entity
    url: str | None = None
    language: str | None = None


class TextBuilder:
    """Text plus entities, with block separators and list indentation applied lazily.

    Separators are only written when more text follows, so an empty block (an open fence with no
    code yet, a heading still being typed) leaves no stray blank lines behind.
    """

    def __init__(self) -> None:
        self._parts: list[str] = []
        self._entities: list[Entity] = []
        self._open: list[_Open] = []
        self._break = 0
        self.pos = 0
        self.indent = ""

    @property
    def empty(self) -> bool:
        return not self._parts

    def request_break(self, newlines: int) -> None:
        if self._parts:
            self._break = max(self._break, newlines)

    def write(self, text: str, *, raw: bool = False) -> None:
        """Append text; `raw` (code) skips the list indentation after a separator."""
        if not text:
            return
        if self._break:
            sep = "\n" * self._break + ("" if raw else self.indent)
            self._parts.append(sep)
            self.pos += len(sep)
            self._break = 0
        for entity in self._open:
            if entity.start is None:
                entity.start = self.pos
        self._parts.append(text)
        self.pos += utf16_len(text)

    def open(self, type_: str, url: str | None = None, language: str | None = None) -> None:
        self._open.append(_Open(type_, None, url, language))

    def close(self) -> None:
        entity = self._open.pop()
        if entity.start is not None and self.pos > entity.start:
            length = self.pos - entity.start
            self._entities.append(
                Entity(entity.type, entity.start, length, entity.url, entity.language)
            )

    def is_open(self, type_: str) -> bool:
        return any(entity.type == type_ for entity in self._open)

    def text(self) -> str:
        return "".join(self._parts)

    def build(self) -> Rendered:
        entities = sorted(telegram_nesting(self._entities), key=sort_key)
        return strip(Rendered(self.text(), tuple(entities)))
