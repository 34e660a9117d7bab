"""Markdown → text + entities: realistic answers (fixtures), each construct, and partial input."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from bot.render import Entity, Rendered, render_markdown
from bot.render.markdown import render_block
from tests.unit.test_render_checks import check_rendered

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "render"


def covered(rendered: Rendered, entity: Entity) -> str:
    units = rendered.text.encode("utf-16-le")
    return units[entity.offset * 2 : (entity.offset + entity.length) * 2].decode("utf-16-le")


def spans(rendered: Rendered) -> list[tuple[str, str]]:
    return [(e.type, covered(rendered, e)) for e in rendered.entities]


@pytest.mark.parametrize("source", sorted(FIXTURES.glob("*.md")), ids=lambda p: p.stem)
def test_fixture_answers(source: Path) -> None:
    expected = json.loads(source.with_suffix(".json").read_text())
    rendered = render_markdown(source.read_text())
    assert rendered.text == expected["text"]
    entities = [{k: v for k, v in e.items() if k != "covers"} for e in expected["entities"]]
    assert [e.to_api() for e in rendered.entities] == entities
    # "covers" spells out what each entity spans, so a reviewer can read the fixture; check it.
    assert [covered(rendered, e) for e in rendered.entities] == [
        e["covers"] for e in expected["entities"]
    ]
    check_rendered(rendered)


@pytest.mark.parametrize(
    ("source", "text", "expected"),
    [
        ("**bold** and __bold__", "bold and bold", [("bold", "bold"), ("bold", "bold")]),
        ("*it* _it_", "it it", [("italic", "it"), ("italic", "it")]),
        ("~~gone~~", "gone", [("strikethrough", "gone")]),
        ("use `x = 1`", "use x = 1", [("code", "x = 1")]),
        ("***both***", "both", [("bold", "both"), ("italic", "both")]),
        ("# Title\ntext", "Title\ntext", [("bold", "Title")]),
        ("Setext\n======", "Setext", [("bold", "Setext")]),
        ("[site](https://a.io)", "site", [("text_link", "site")]),
        ("[file](./x.md)", "file", []),
        ("[js](javascript:alert(1))", "[js](javascript:alert(1))", []),
        ("![cat](https://a.io/c.png)", "cat", [("text_link", "cat")]),
        ("![](https://a.io/c.png)", "image", [("text_link", "image")]),
        ("a\n\n***\n\nb", "a\n\n———\n\nb", []),
        ("> q1\n> q2", "q1\nq2", [("blockquote", "q1\nq2")]),
        ("<b>raw</b> &amp; 1 < 2", "<b>raw</b> & 1 < 2", []),
        ("line one\nline two", "line one\nline two", []),
        ("hard  \nbreak", "hard\nbreak", []),
        ("    indented code", "indented code", [("pre", "indented code")]),
    ],
)
def test_constructs(source: str, text: str, expected: list[tuple[str, str]]) -> None:
    rendered = render_markdown(source)
    assert rendered.text == text
    assert spans(rendered) == expected
    check_rendered(rendered)


def test_fence_language_and_content() -> None:
    rendered = render_markdown("```python title=x\nprint('hi')\n```")
    assert rendered == Rendered("print('hi')", (Entity("pre", 0, 11, language="python"),))


def test_lists_use_bullets_numbers_and_indentation() -> None:
    rendered = render_markdown("- a\n  - b\n    1. c\n- d\n\n3. x\n4. y")
    assert rendered.text == "• a\n  • b\n    1. c\n• d\n\n3. x\n4. y"


def test_loose_list_keeps_its_blank_lines() -> None:
    assert render_markdown("- a\n\n- b").text == "• a\n\n• b"


def test_code_inside_bold_splits_the_bold() -> None:
    # Bot API: bold can't contain code.
    rendered = render_markdown("**run `ls` now**")
    assert spans(rendered) == [("bold", "run "), ("code", "ls"), ("bold", " now")]


def test_code_inside_a_link_stays_a_link() -> None:
    assert spans(render_markdown("[`api`](https://a.io)")) == [("text_link", "api")]


def test_utf16_offsets_count_surrogate_pairs() -> None:
    rendered = render_markdown("😀 **bold** 中文 **ok**")
    assert rendered.text == "😀 bold 中文 ok"
    assert rendered.entities == (Entity("bold", 3, 4), Entity("bold", 11, 2))


def test_entities_skip_combining_marks_and_zwj_sequences_whole() -> None:
    rendered = render_markdown("e\u0301 **👨‍👩‍👧** x")
    assert spans(rendered) == [("bold", "👨‍👩‍👧")]
    check_rendered(rendered)


def test_table_is_an_aligned_pre_block() -> None:
    rendered = render_markdown(
        "| a | long header | n |\n|--:|---|--:|\n| 10 | x | 1 |\n| 2 | `y` | 22 |"
    )
    assert rendered.text.split("\n") == [
        "a  | long header |  n",
        "---+-------------+---",
        "10 | x           |  1",
        "2  | y           | 22",
    ]
    assert spans(rendered) == [("pre", rendered.text)]


def test_empty_and_whitespace_sources_render_empty() -> None:
    assert render_markdown("") == Rendered("")
    assert render_markdown(" \n\n\t") == Rendered("")
    assert render_markdown("```\n```") == Rendered("")


class TestPartialInput:
    """Frames of an answer still arriving: no raw markers, nothing half-parsed."""

    def render(self, source: str) -> Rendered:
        rendered = render_block(source, partial=True)
        check_rendered(rendered)
        return rendered

    def test_open_fence_is_an_open_pre_with_its_language(self) -> None:
        rendered = self.render("Try:\n\n```python\ndef f():\n    return 1")
        assert rendered.text == "Try:\n\ndef f():\n    return 1"
        assert rendered.entities[-1] == Entity("pre", 6, 21, language="python")

    def test_fence_opener_still_being_typed_shows_nothing_yet(self) -> None:
        assert self.render("Try:\n\n```pyt").text == "Try:"
        assert self.render("Try:\n\n``").text == "Try:"

    def test_closing_fence_being_typed_is_hidden(self) -> None:
        assert self.render("```\ncode\n``").text == "code"

    def test_unclosed_bold_is_bold_in_progress(self) -> None:
        assert spans(self.render("This is **very imp")) == [("bold", "very imp")]

    def test_trailing_delimiters_are_hidden_until_resolved(self) -> None:
        assert self.render("Done **").text == "Done"
        assert self.render("**bold*").text == "bold"
        assert self.render("see `").text == "see"

    def test_unclosed_code_italic_and_strike(self) -> None:
        assert spans(self.render("run `uv sy")) == [("code", "uv sy")]
        assert spans(self.render("an _ital")) == [("italic", "ital")]
        assert spans(self.render("~~old")) == [("strikethrough", "old")]

    def test_intraword_stars_are_not_formatting(self) -> None:
        assert self.render("2*3 = 6").text == "2*3 = 6"

    def test_half_link_shows_its_text(self) -> None:
        assert self.render("read [the docs](htt").text == "read the docs"
        assert self.render("read [the docs](").text == "read the docs"

    def test_half_table_is_laid_out_as_a_table(self) -> None:
        assert self.render("| Name | Age |\n| --").text == "Name | Age\n-----+----"
        assert self.render("| Name | Ag").text == "Name | Ag\n-----+---"
        rows = self.render("| a | b |\n|---|---|\n| 1 | 2 |\n| 3")
        assert rows.text == "a | b\n--+--\n1 | 2\n3 |"

    def test_marker_only_last_line_is_hidden(self) -> None:
        for tail in ("-", "1.", "#", ">", "---", "* "):
            assert self.render(f"Intro\n{tail}").text == "Intro", tail

    def test_latex_in_progress_stays_readable(self) -> None:
        assert self.render("so $x_1 + y").text == "so $x_1 + y"


def test_the_parser_compiles_its_rule_chains_before_the_first_answer() -> None:
    """markdown-it builds its rule chains lazily; ours are built when the parser is made, so
    the first answer's first frame does not pay for it."""
    from bot.render.markdown import _InlineCache, _make_parser

    md = _make_parser(_InlineCache())
    rulers = {"core": md.core.ruler, "block": md.block.ruler, "inline": md.inline.ruler,
              "inline2": md.inline.ruler2}
    assert {name: ruler.__cache__ is not None for name, ruler in rulers.items()} == {
        name: True for name in rulers
    }
