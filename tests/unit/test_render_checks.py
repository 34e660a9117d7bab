"""Invariants every rendered page must satisfy (used by the other render tests), and their tests."""

from __future__ import annotations

import re

from bot.render import Entity, Rendered, utf16_len
from bot.render.entities import clip

ENTITY_TYPES = {
    "bold",
    "italic",
    "strikethrough",
    "code",
    "pre",
    "text_link",
    "blockquote",
    "expandable_blockquote",
}
QUOTES = {"blockquote", "expandable_blockquote"}


def boundaries(text: str) -> set[int]:
    """UTF-16 offsets that fall between characters (never inside a surrogate pair)."""
    out, at = {0}, 0
    for ch in text:
        at += 2 if ord(ch) > 0xFFFF else 1
        out.add(at)
    return out


def contains(outer: Entity, inner: Entity) -> bool:
    inner_end, outer_end = inner.offset + inner.length, outer.offset + outer.length
    return outer.offset <= inner.offset and inner_end <= outer_end


def check_rendered(rendered: Rendered, limit: int | None = None) -> None:
    """Entities inside the text, non-empty, on character boundaries, nested as Telegram allows."""
    size = utf16_len(rendered.text)
    if limit is not None:
        assert size <= limit, (size, limit)
        assert len(rendered.entities) <= 100
    edges = boundaries(rendered.text)
    for e in rendered.entities:
        assert e.type in ENTITY_TYPES, e
        assert e.length > 0 and e.offset >= 0 and e.offset + e.length <= size, (e, size)
        assert e.offset in edges and e.offset + e.length in edges, e
        assert (e.url is not None) == (e.type == "text_link"), e
        if e.url is not None:
            assert re.match(r"https?://", e.url), e
    for a in rendered.entities:
        for b in rendered.entities:
            if a is b:
                continue
            disjoint = a.offset + a.length <= b.offset or b.offset + b.length <= a.offset
            assert disjoint or contains(a, b) or contains(b, a), (a, b)
            if not disjoint and contains(a, b) and (a.offset, a.length) != (b.offset, b.length):
                assert a.type not in ("pre", "code"), (a, b)  # monospace contains nothing
                assert not (a.type in QUOTES and b.type in QUOTES), (a, b)
                assert not (a.type == "text_link" and b.type in ("pre", "code")), (a, b)


def check_pages(pages: list[Rendered], limit: int) -> None:
    for page in pages:
        assert page.text.strip(), pages
        check_rendered(page, limit)


def check_tiling(whole: Rendered, pages: list[Rendered], *, entities: bool = True) -> None:
    """The pages are the whole text cut in order, dropping only whitespace at the cuts; each
    page's entities are the whole's entities clipped to it (bar the 100-entity cap)."""
    at = 0
    for page in pages:
        start = whole.text.find(page.text, at)
        assert start >= 0, (page.text, whole.text[at:])
        assert not whole.text[at:start].strip(), whole.text[at:start]
        if entities:
            lo = utf16_len(whole.text[:start])
            expected = set(clip(whole.entities, lo, lo + utf16_len(page.text)))
            got = set(page.entities)
            assert got <= expected, got - expected
            assert got == expected or len(got) == 100, expected - got
        at = start + len(page.text)
    assert not whole.text[at:].strip(), whole.text[at:]


def visible(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_boundaries_skip_the_middle_of_a_surrogate_pair() -> None:
    assert boundaries("a😀b") == {0, 1, 3, 4}


def test_check_rendered_rejects_partial_overlap() -> None:
    bad = Rendered("abcdef", (Entity("bold", 0, 3), Entity("italic", 2, 3)))
    try:
        check_rendered(bad)
    except AssertionError:
        return
    raise AssertionError("overlap not detected")


def test_check_tiling_accepts_cuts_at_whitespace_only() -> None:
    whole = Rendered("one two\n\nthree", (Entity("bold", 4, 3),))
    check_tiling(whole, [Rendered("one two", (Entity("bold", 4, 3),)), Rendered("three")])
    try:
        check_tiling(whole, [Rendered("one"), Rendered("three")])
    except AssertionError:
        return
    raise AssertionError("a lost word was not detected")
