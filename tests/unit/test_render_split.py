"""Splitting rendered text into Telegram messages of at most `limit` UTF-16 units."""

from __future__ import annotations

import pytest

from bot.render import Entity, Rendered, render_markdown, split_rendered, utf16_len
from bot.render.split import paginate
from tests.unit.test_render_checks import check_pages, check_tiling


def test_short_text_is_one_page() -> None:
    rendered = render_markdown("**hi** there")
    assert split_rendered(rendered, 4096) == [rendered]


def test_empty_text_has_no_pages() -> None:
    assert split_rendered(Rendered(""), 100) == []
    assert split_rendered(Rendered(" \n "), 100) == []


def test_prefers_a_paragraph_break_then_a_line_then_a_word() -> None:
    text = "alpha beta gamma\n\ndelta epsilon\nzeta eta theta"
    assert [p.text for p in split_rendered(Rendered(text), 30)] == [
        "alpha beta gamma",
        "delta epsilon\nzeta eta theta",
    ]
    assert [p.text for p in split_rendered(Rendered("one two three four"), 10)] == [
        "one two",
        "three four",
    ]


def test_a_word_longer_than_a_page_is_cut_hard() -> None:
    pages = split_rendered(Rendered("x" * 25), 10)
    assert [p.text for p in pages] == ["x" * 10, "x" * 10, "x" * 5]


def test_never_cuts_inside_a_surrogate_pair_or_a_grapheme() -> None:
    emoji = "😀" * 9  # 18 UTF-16 units
    pages = split_rendered(Rendered(emoji), 5)
    assert [utf16_len(p.text) for p in pages] == [4, 4, 4, 4, 2]
    assert "".join(p.text for p in pages) == emoji
    accented = "e\u0301" * 6
    assert all(not p.text.startswith("\u0301") for p in split_rendered(Rendered(accented), 3))


def test_code_block_crossing_a_cut_continues_with_its_language() -> None:
    code = "\n".join(f"line_{i} = {i}" for i in range(12))
    rendered = render_markdown(f"Intro.\n\n```python\n{code}\n```")
    pages = split_rendered(rendered, 80)
    check_pages(pages, 80)
    check_tiling(rendered, pages)
    pres = [e for page in pages for e in page.entities if e.type == "pre"]
    assert len(pres) >= 2
    assert {e.language for e in pres} == {"python"}


def test_code_indentation_survives_a_cut() -> None:
    rendered = render_markdown("```\n" + "\n".join(["def f():"] + ["    pass"] * 20) + "\n```")
    pages = split_rendered(rendered, 50)
    assert all(p.text.startswith(("def", "    pass")) for p in pages)


def test_entities_crossing_a_cut_are_split_and_rebased() -> None:
    rendered = render_markdown("**" + " ".join(["word"] * 10) + "**")
    pages = split_rendered(rendered, 22)
    for page in pages:
        assert page.entities == (Entity("bold", 0, utf16_len(page.text)),)


def test_only_the_first_hundred_entities_are_kept() -> None:
    rendered = render_markdown(" ".join(f"**b{i}**" for i in range(150)))
    [page] = split_rendered(rendered, 4096)
    assert page.text == rendered.text
    assert len(page.entities) == 100
    assert page.entities == rendered.entities[:100]


def test_pages_report_where_they_start() -> None:
    text = "aaa bbb ccc ddd"
    pages = paginate(Rendered(text), 8)
    assert [(p.rendered.text, p.start) for p in pages] == [("aaa bbb", 0), ("ccc ddd", 8)]


@pytest.mark.parametrize("limit", [1, 0])
def test_a_limit_below_one_character_is_refused(limit: int) -> None:
    with pytest.raises(ValueError, match="limit"):
        split_rendered(Rendered("abc"), limit)
