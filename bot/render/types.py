"""What the renderer hands to the transport: plain text plus Telegram entities (UTF-16 offsets)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True, slots=True)
class Entity:
    """A Telegram MessageEntity; offset and length count UTF-16 code units."""

    type: str
    offset: int
    length: int
    url: str | None = None
    language: str | None = None

    def to_api(self) -> dict[str, Any]:
        out: dict[str, Any] = {"type": self.type, "offset": self.offset, "length": self.length}
        if self.url is not None:
            out["url"] = self.url
        if self.language is not None:
            out["language"] = self.language
        return out


@dataclass(frozen=True, slots=True)
class Rendered:
    """One Telegram message's worth of text: at most the page limit in UTF-16 units."""

    text: str
    entities: tuple[Entity, ...] = field(default=())

    @property
    def empty(self) -> bool:
        return not self.text.strip()
