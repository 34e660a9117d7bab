"""Property tests: any Markdown-ish text, any page limit, any way of cutting it into deltas."""

from __future__ import annotations

import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from bot.render import MarkdownStream, Rendered, render_markdown, split_rendered
from bot.render.markdown import render_block
from bot.render.stream import MARKUP
from tests.unit.test_render_checks import check_pages, check_rendered, check_tiling, visible

WORDS = [
    "hello", "world", "a", "Ünïcode", "😀", "👍🏽", "👨‍👩‍👧", "中文字符", "مرحبا", "e\u0301",
    "snake_case", "2*3", "$x_1$", "\\(a_b\\)", "x", "https://example.com", "🇺🇦", "ok.",
]  # fmt: skip
MARKS = [
    "**", "*", "_", "__", "~~", "~", "`", "``", "[", "]", "(", ")", "](https://example.com/a_b)",
    "![alt](http://img.png)", "[link](https://t.me)", "\\", "<", ">", "&amp;", "|", "#", "!",
    "$", " ", "  ", "\t", "\n", "\n\n", "\n\n\n",
]  # fmt: skip
LINE_STARTS = [
    "# ", "### ", "- ", "* ", "+ ", "1. ", "2) ", "> ", "> > ", "    ", "  - ", "   1. ",
    "```python\n", "```\n", "~~~js\n", "```", "| a | b |\n|---|:-:|\n| ", "| ", "---\n",
    "===\n", "***\n", "[ref]: https://example.com\n",
]  # fmt: skip

fragment = st.one_of(
    st.sampled_from(WORDS).map(lambda w: w + " "),
    st.sampled_from(WORDS),
    st.sampled_from(MARKS),
    st.sampled_from(LINE_STARTS).map(lambda s: "\n" + s),
    st.text(max_size=6),
)
markdown = st.lists(fragment, max_size=60).map("".join)
cell = st.lists(
    st.sampled_from([*WORDS, "**", "`", "\\|", "|", " ", "~~", "[x](https://a.io)", "\\"]),
    max_size=4,
).map("".join)
table = st.lists(st.lists(cell, min_size=1, max_size=4), min_size=1, max_size=5).map(
    lambda rows: "| h1 | h2 |\n|---|--:|\n" + "\n".join("| " + " | ".join(r) for r in rows)
)
limits = st.sampled_from([50, 64, 100, 180, 300, 4096])
chunks = st.lists(st.integers(min_value=1, max_value=15), min_size=1, max_size=20)
# RENDER_PROPERTY_EXAMPLES=20000 for a longer hunt than CI affords.
EXAMPLES = int(os.environ.get("RENDER_PROPERTY_EXAMPLES", "400"))
SETTINGS = settings(
    max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)


def feed_in_chunks(stream: MarkdownStream, text: str, sizes: list[int]) -> list[list[Rendered]]:
    frames, at, i = [], 0, 0
    while at < len(text):
        size = sizes[i % len(sizes)]
        stream.feed(text[at : at + size])
        frames.append(stream.pages())
        at, i = at + size, i + 1
    return frames


@SETTINGS
@given(markdown, st.integers(min_value=0, max_value=400))
def test_any_prefix_renders(text: str, cut: int) -> None:
    for partial in (True, False):
        check_rendered(render_block(text[:cut], partial=partial))
    check_rendered(render_markdown(text[:cut]))


@SETTINGS
@given(markdown)
def test_partial_rendering_never_shows_an_opening_delimiter_at_the_end(text: str) -> None:
    rendered = render_block(text.rstrip() + " **bold", partial=True)
    end = len(rendered.text.encode("utf-16-le")) // 2
    in_code = any(
        e.type in ("pre", "code") and e.offset + e.length == end for e in rendered.entities
    )
    assert in_code or not rendered.text.endswith("**bold")


@SETTINGS
@given(markdown, limits)
def test_split_pages_fit_and_tile_the_whole(text: str, limit: int) -> None:
    whole = render_markdown(text)
    pages = split_rendered(whole, limit)
    check_pages(pages, limit)
    check_tiling(whole, pages)
    assert bool(pages) == bool(whole.text.strip())


@SETTINGS
@given(markdown, limits, chunks)
def test_stream_without_frames_equals_one_shot(text: str, limit: int, sizes: list[int]) -> None:
    stream = MarkdownStream(limit=limit, reasoning_display="hidden")
    at, i = 0, 0
    while at < len(text):
        stream.feed(text[at : at + sizes[i % len(sizes)]])
        at, i = at + sizes[i % len(sizes)], i + 1
    assert stream.finish() == split_rendered(render_markdown(text), limit)


@SETTINGS
@given(st.one_of(markdown, table, st.tuples(markdown, table).map("\n\n".join)), chunks)
def test_every_frame_matches_a_fresh_render_of_the_same_prefix(text: str, sizes: list[int]) -> None:
    """The incremental tiers (append, inline, cached blocks) agree with rendering from scratch."""
    stream = MarkdownStream(limit=1_000_000, reasoning_display="hidden")
    at, i = 0, 0
    while at < len(text):
        at, i = at + sizes[i % len(sizes)], i + 1
        stream.feed(text[at - sizes[(i - 1) % len(sizes)] : at])
        fresh = MarkdownStream(limit=1_000_000, reasoning_display="hidden")
        fresh.feed(text[:at])
        assert stream.pages() == fresh.pages(), text[:at]


@SETTINGS
@given(markdown, limits, chunks)
def test_stream_freezes_pages_and_loses_nothing(text: str, limit: int, sizes: list[int]) -> None:
    stream = MarkdownStream(limit=limit)
    frozen: list[Rendered] = []
    for frame in feed_in_chunks(stream, text, sizes):
        check_pages([p for p in frame if p.text], limit)
        assert frame[: len(frozen)] == frozen, "a frozen page changed"
        frozen = frame[:-1]
    final = stream.finish()
    check_pages(final, limit)
    assert final[: len(frozen)] == frozen
    # A page frozen mid-block may show that block as it parsed then (an unclosed `**` as bold in
    # progress, a table before its columns widened); past markup, every character must be there.
    streamed = _words("".join(p.text for p in final))
    expected = _words(render_markdown(text).text)
    assert _is_subsequence(expected, streamed), (expected, streamed)


def _words(text: str) -> str:
    return "".join(ch for ch in visible(text) if ch not in MARKUP)


def _is_subsequence(short: str, long: str) -> bool:
    it = iter(long)
    return all(ch in it for ch in short)


INDENTED_CODE = "Intro.\n\n```python\n" + "\n".join(
    f"    value_{i} = compute({i})  # line {i}" for i in range(60)) + "\n```\n\nDone."


@SETTINGS
@given(st.lists(st.integers(min_value=1, max_value=400), min_size=1, max_size=12),
       st.sampled_from([300, 700, 4096]))
def test_pages_do_not_depend_on_how_the_text_arrived(sizes: list[int], limit: int) -> None:
    """Batched network reads feed the renderer in any pieces: a page that starts inside a code
    block keeps the line's indentation whichever way the page was reached (frozen mid-stream
    or cut at the end)."""
    stream = MarkdownStream(limit=limit)
    feed_in_chunks(stream, INDENTED_CODE, sizes)
    one_shot = MarkdownStream(limit=limit)
    one_shot.feed(INDENTED_CODE)
    assert [p.text for p in stream.finish()] == [p.text for p in one_shot.finish()]
