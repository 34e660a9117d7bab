"""Split rendered text into Telegram messages of at most `limit` UTF-16 units.

Cuts prefer a paragraph break, then a line break, then a space; failing those the text is cut
hard, never inside a surrogate pair and not between a character and its combining marks. Entities
crossing a cut are split, so a code block continues as a `pre` with the same language on the next
page. Whitespace at a cut is trimmed (except a code line's indentation).
"""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass

from .entities import MAX_ENTITIES, cap, clip, rstrip, slice_text
from .types import Entity, Rendered
from .utf16 import prefix_within, utf16_len


@dataclass(frozen=True, slots=True)
class Page:
    rendered: Rendered
    start: int  # index in the split text where this page's text begins


def split_rendered(rendered: Rendered, limit: int) -> list[Rendered]:
    """Pages of `rendered`, none empty (an empty text gives no pages)."""
    return [page.rendered for page in paginate(rendered, limit) if page.rendered.text]


def paginate(rendered: Rendered, limit: int, max_entities: int = MAX_ENTITIES) -> list[Page]:
    """Pages with where each starts; always at least one (possibly empty) page."""
    if limit < 2:
        raise ValueError("the page limit must hold at least one character (2 UTF-16 units)")
    text = rendered.text
    start = page_start(rendered, 0)
    if utf16_len(text) - utf16_len(text[:start]) <= limit:
        page = rstrip(slice_text(rendered, start))
        return [Page(Rendered(page.text, cap(page.entities, max_entities)), start if page.text
                     else 0)]
    pages: list[Page] = []
    start16 = utf16_len(text[:start])
    while True:
        rest16 = utf16_len(text[start:])
        end = (
            len(text)
            if rest16 <= limit
            else _cut(text, start, start + prefix_within(text[start:], limit))
        )
        body = text[start:end].rstrip()
        end16 = start16 + utf16_len(body)
        entities = cap(clip(rendered.entities, start16, end16), max_entities)
        pages.append(Page(Rendered(body, entities), start))
        if end >= len(text):
            return pages
        next_start = _next_start(text, end, rendered.entities, start16 + utf16_len(text[start:end]))
        if next_start >= len(text):
            return pages
        start16 += utf16_len(text[start:next_start])
        start = next_start


def _cut(text: str, start: int, end: int) -> int:
    """Where the page [start, end) should end: the best break at or before `end`."""
    for sep, share in (("\n\n", 2), ("\n", 3)):
        at = text.rfind(sep, start + 1, end + 1)
        if at > start + (end - start) // share:
            return at
    at = text.rfind(" ", start + 1, end + 1)
    if at > start:
        return at
    # No break at all: cut hard, but keep a character together with what modifies it.
    while end > start + 1 and _joins(text[end - 1], text[end]):
        end -= 1
    return end


def _joins(before: str, after: str) -> bool:
    return (
        unicodedata.combining(after) > 0
        or after in "\u200d\ufe0f\ufe0e"
        or before == "\u200d"
        or "\U0001f3fb" <= after <= "\U0001f3ff"
        or unicodedata.category(after) == "Mn"
    )


def page_start(rendered: Rendered, at: int) -> int:
    """Where a page that may start at `at` starts: past the whitespace, except a code line's
    indentation. The same rule wherever a page begins, so the pages of an answer do not depend
    on how its text arrived."""
    return _next_start(rendered.text, at, rendered.entities, utf16_len(rendered.text[:at]))


def _next_start(text: str, cut: int, entities: tuple[Entity, ...], cut16: int) -> int:
    """Skip the whitespace after a cut, but keep the indentation of a code line."""
    at = cut
    while at < len(text) and text[at] in " \n\t\r":
        at += 1
    line = text.rfind("\n", cut, at) + 1
    if line == 0:  # no line break skipped: indentation only if `cut` starts a line itself
        if cut > 0 and text[cut - 1] != "\n":
            return at
        line = cut
    if any(
        e.type == "pre" and e.offset <= cut16 + (line - cut) < e.offset + e.length for e in entities
    ):
        return line  # only ASCII whitespace was skipped, so string and UTF-16 offsets agree here
    return at
