"""What a frame adds to the rendered page: the streaming cursor, and a closing note."""

from __future__ import annotations

from bot.render import TELEGRAM_TEXT_LIMIT, Entity, Rendered, utf16_len


def with_cursor(page: Rendered, cursor: str) -> Rendered:
    if not cursor or utf16_len(page.text) + utf16_len(cursor) > TELEGRAM_TEXT_LIMIT:
        return page
    return Rendered(page.text + cursor, page.entities)


def append_note(pages: list[Rendered], note: str) -> list[Rendered]:
    pages = list(pages)
    if pages:
        last = pages[-1]
        sep = "\n\n"
        if utf16_len(last.text) + utf16_len(sep + note) <= TELEGRAM_TEXT_LIMIT:
            start = utf16_len(last.text + sep)
            italic = Entity("italic", start, utf16_len(note))
            pages[-1] = Rendered(last.text + sep + note, (*last.entities, italic))
            return pages
    pages.append(Rendered(note, (Entity("italic", 0, utf16_len(note)),)))
    return pages
