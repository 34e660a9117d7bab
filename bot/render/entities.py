"""Operations on rendered text + entities: slicing, joining, and Telegram's nesting rules.

Offsets are UTF-16 code units throughout (the Bot API's unit); text positions passed in are
Python string indices and are converted here, once, so callers never mix the two.
"""

from __future__ import annotations

from collections.abc import Iterable

from .types import Entity, Rendered
from .utf16 import utf16_len

# Telegram honours about 100 entities per message; past that it drops formatting.
MAX_ENTITIES = 100

# Bot API, "Formatting options": bold, italic, underline, strikethrough and spoiler can contain
# and be part of other entities, except pre and code; pre and code contain nothing.
SPLITTABLE = frozenset({"bold", "italic", "underline", "strikethrough", "spoiler"})
MONOSPACE = frozenset({"code", "pre"})

EMPTY = Rendered("")


def sort_key(entity: Entity) -> tuple[int, int]:
    # Outer entities first: the order Telegram clients and our own checks expect.
    return entity.offset, -entity.length


def shift(entities: Iterable[Entity], by: int) -> tuple[Entity, ...]:
    if by == 0:
        return tuple(entities)
    return tuple(Entity(e.type, e.offset + by, e.length, e.url, e.language) for e in entities)


def clip(entities: Iterable[Entity], start: int, end: int) -> tuple[Entity, ...]:
    """Entities cut to the UTF-16 range [start, end) and re-based to start; empty ones dropped."""
    out = []
    for e in entities:
        lo, hi = max(e.offset, start), min(e.offset + e.length, end)
        if hi > lo:
            out.append(Entity(e.type, lo - start, hi - lo, e.url, e.language))
    return tuple(out)


def slice_text(rendered: Rendered, start: int, end: int | None = None) -> Rendered:
    """rendered.text[start:end] (string indices) with the entities that fall inside it."""
    text = rendered.text
    end = len(text) if end is None else end
    if start == 0 and end == len(text):
        return rendered
    lo = utf16_len(text[:start])
    piece = text[start:end]
    return Rendered(piece, clip(rendered.entities, lo, lo + utf16_len(piece)))


def strip(rendered: Rendered) -> Rendered:
    """Leading and trailing whitespace removed (Telegram trims messages anyway)."""
    text = rendered.text
    if not text or (not text[0].isspace() and not text[-1].isspace()):
        return rendered
    body = text.strip()
    if not body:
        return EMPTY
    start = len(text) - len(text.lstrip())
    return slice_text(rendered, start, start + len(body))


def rstrip(rendered: Rendered) -> Rendered:
    """Trailing whitespace removed."""
    text = rendered.text
    body = text.rstrip()
    if len(body) == len(text):
        return rendered
    return slice_text(rendered, 0, len(body)) if body else EMPTY


def join(first: Rendered, second: Rendered, sep: str) -> Rendered:
    """first + sep + second; the separator is dropped when either side is empty."""
    if not second.text:
        return first
    if not first.text:
        return second
    head = first.text + sep
    return Rendered(head + second.text, first.entities + shift(second.entities, utf16_len(head)))


def cap(entities: tuple[Entity, ...], limit: int = MAX_ENTITIES) -> tuple[Entity, ...]:
    """Keep the first `limit` entities in text order; the text itself is kept whole."""
    if len(entities) <= limit:
        return entities
    return tuple(sorted(entities, key=sort_key)[:limit])


def telegram_nesting(entities: list[Entity]) -> list[Entity]:
    """Make entities obey the Bot API nesting rules without losing text.

    Code inside a link loses its monospace (the link matters more); bold/italic/strikethrough
    around code are split so that they stop at the code's edges.
    """
    mono = [e for e in entities if e.type in MONOSPACE]
    if not mono:
        return entities
    links = [e for e in entities if e.type == "text_link"]
    if links:
        mono = [m for m in mono if not any(_inside(m, link) for link in links)]
        entities = [e for e in entities if e.type not in MONOSPACE or e in mono]
    out: list[Entity] = []
    for e in entities:
        if e.type in SPLITTABLE:
            out.extend(_cut_around(e, mono))
        else:
            out.append(e)
    return out


def _inside(inner: Entity, outer: Entity) -> bool:
    return (
        outer.offset <= inner.offset and inner.offset + inner.length <= outer.offset + outer.length
    )


def _cut_around(entity: Entity, holes: list[Entity]) -> list[Entity]:
    start, end = entity.offset, entity.offset + entity.length
    pieces: list[Entity] = []
    for hole in sorted(holes, key=sort_key):
        h_start, h_end = hole.offset, hole.offset + hole.length
        if h_end <= start or h_start >= end:
            continue
        if h_start > start:
            pieces.append(Entity(entity.type, start, h_start - start, entity.url, entity.language))
        start = max(start, h_end)
    if end > start:
        pieces.append(Entity(entity.type, start, end - start, entity.url, entity.language))
    return pieces
