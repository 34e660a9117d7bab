"""MarkdownStream: frames while streaming, frozen pages, reasoning and <think> blocks."""

from __future__ import annotations

import random
from pathlib import Path
from typing import Any

import pytest

from bot.render import Entity, MarkdownStream, ReasoningDisplay, Rendered, markdown, utf16_len
from bot.render.markdown import render_markdown
from bot.render.reasoning import ThinkSplitter
from tests.unit.test_render_checks import check_pages


def feed_chars(stream: MarkdownStream, text: str) -> list[list[Rendered]]:
    frames = []
    for ch in text:
        stream.feed(ch)
        frames.append(stream.pages())
    return frames


def test_frames_are_formatted_while_streaming() -> None:
    stream = MarkdownStream()
    frames = feed_chars(stream, "Use **bold** and `code`")
    texts = [frame[-1].text for frame in frames]
    assert not any("**" in text or "`" in text for text in texts)
    assert frames[8][-1] == Rendered("Use bol", (Entity("bold", 4, 3),))
    assert stream.finish() == [
        Rendered("Use bold and code", (Entity("bold", 4, 4), Entity("code", 13, 4)))
    ]


def test_an_open_fence_streams_as_pre_with_its_language() -> None:
    stream = MarkdownStream()
    feed_chars(stream, "```python\nprint(1)\n")
    assert stream.pages() == [Rendered("print(1)", (Entity("pre", 0, 8, language="python"),))]


def test_before_any_answer_there_is_one_empty_frame() -> None:
    assert MarkdownStream().pages() == [Rendered("")]


def test_empty_answer_finishes_with_no_pages() -> None:
    stream = MarkdownStream()
    stream.feed("  \n")
    assert stream.finish() == []


def test_finish_is_idempotent_and_closes_the_stream() -> None:
    stream = MarkdownStream()
    stream.feed("hi")
    assert stream.finish() == stream.finish() == stream.pages()
    with pytest.raises(RuntimeError):
        stream.feed("more")


def test_pages_freeze_once_a_later_page_exists() -> None:
    stream = MarkdownStream(limit=60)
    text = "\n\n".join(f"Paragraph {i} has **some** words in it." for i in range(8))
    frozen: list[Rendered] = []
    for frame in feed_chars(stream, text):
        assert frame[: len(frozen)] == frozen
        frozen = frame[:-1]
        check_pages(frame, 60)
    assert len(frozen) >= 4
    final = stream.finish()
    assert final[: len(frozen)] == frozen
    check_pages(final, 60)


def test_source_is_the_answer_without_reasoning() -> None:
    stream = MarkdownStream()
    stream.feed("<think>hmm</think>\n\nAnswer")
    assert stream.source == "\n\nAnswer"
    assert stream.reasoning == "hmm"


def test_deltas_are_normalised() -> None:
    stream = MarkdownStream()
    for delta in ["line\r", "\nnext", "\ud83d", "\ude00"]:
        stream.feed(delta)
    assert stream.source == "line\nnext😀"
    assert stream.finish()[0].text == "line\nnext😀"


@pytest.mark.parametrize(
    "deltas",
    [
        ["<think>plan</think>Answer"],
        ["<thi", "nk>pl", "an</th", "ink>Ans", "wer"],
        list("<think>plan</think>Answer"),
    ],
)
def test_think_block_split_across_deltas(deltas: list[str]) -> None:
    stream = MarkdownStream(reasoning_display="hidden")
    for delta in deltas:
        stream.feed(delta)
    assert stream.reasoning == "plan"
    assert stream.finish() == [Rendered("Answer")]


def test_think_block_in_the_middle_and_a_lone_angle_bracket() -> None:
    splitter = ThinkSplitter()
    parts = [splitter.feed(d) for d in ["a < b <", "think>x<", "/think> c"]]
    parts.append(splitter.finish())
    assert "".join(a for a, _ in parts) == "a < b  c"
    assert "".join(r for _, r in parts) == "x"


def test_thinking_while_only_reasoning_has_arrived() -> None:
    stream = MarkdownStream()
    assert not stream.thinking
    stream.feed_reasoning("Let me think")
    assert stream.thinking
    assert stream.pages() == [Rendered("")]  # frames never show reasoning
    stream.feed("\n")
    assert stream.thinking  # whitespace is not an answer yet
    stream.feed("Hi")
    assert not stream.thinking
    assert stream.pages() == [Rendered("Hi")]


def test_thinking_inside_an_inline_think_block() -> None:
    stream = MarkdownStream()
    stream.feed("<think>step one")
    assert stream.thinking
    assert stream.pages() == [Rendered("")]


def test_collapsed_reasoning_is_an_expandable_quote_above_the_answer() -> None:
    stream = MarkdownStream()
    stream.feed_reasoning("I should **greet**.")
    stream.feed("Hello!")
    [page] = stream.finish()
    assert page.text == "I should greet.\nHello!"
    assert page.entities == (Entity("expandable_blockquote", 0, 15), Entity("bold", 9, 5))


def test_full_reasoning_is_a_plain_quote() -> None:
    stream = MarkdownStream(reasoning_display=ReasoningDisplay.FULL)
    stream.feed("<think>Plan</think>Done")
    assert stream.finish() == [Rendered("Plan\nDone", (Entity("blockquote", 0, 4),))]


def test_hidden_reasoning_is_dropped() -> None:
    stream = MarkdownStream(reasoning_display="hidden")
    stream.feed_reasoning("secret plan")
    stream.feed("Done")
    assert stream.finish() == [Rendered("Done")]


def test_long_reasoning_is_trimmed_with_an_ellipsis() -> None:
    stream = MarkdownStream()
    stream.feed_reasoning("word " * 1000)
    stream.feed("Answer")
    [page] = stream.finish()
    quote = page.entities[0]
    assert quote.type == "expandable_blockquote"
    assert 900 <= quote.length <= 1000
    assert page.text.endswith("…\nAnswer")


def test_reasoning_never_pushes_a_page_over_the_limit() -> None:
    stream = MarkdownStream(limit=120)
    stream.feed_reasoning("thought " * 100)
    stream.feed("answer " * 15)
    pages = stream.finish()
    check_pages(pages, 120)
    assert pages[0].entities[0].type == "expandable_blockquote"
    assert "".join(p.text for p in pages).endswith("answer")


def test_reasoning_goes_first_when_the_answer_needs_several_pages() -> None:
    stream = MarkdownStream(limit=100)
    stream.feed_reasoning("Short plan.")
    frames = feed_chars(stream, "\n\n".join(["Some answer text here."] * 12))
    assert all(frame[-1].entities == () for frame in frames if len(frame) == 1)
    final = stream.finish()
    assert final[0] == Rendered("Short plan.", (Entity("expandable_blockquote", 0, 11),))
    assert all("plan" not in page.text for page in final[1:])
    check_pages(final, 100)


def test_unknown_reasoning_display_is_refused() -> None:
    with pytest.raises(ValueError):
        MarkdownStream(reasoning_display="loud")


def test_long_answer_pages_fit_in_utf16_units() -> None:
    stream = MarkdownStream(limit=4096)
    stream.feed("😀 " * 3000)
    pages = stream.finish()
    assert len(pages) == 3
    assert all(utf16_len(p.text) <= 4096 for p in pages)


def outside_code(page: Rendered) -> str:
    """The page's text with code and pre spans blanked out."""
    units = bytearray(page.text.encode("utf-16-le"))
    for e in page.entities:
        if e.type in ("code", "pre"):
            units[e.offset * 2 : (e.offset + e.length) * 2] = " ".encode("utf-16-le") * e.length
    return units.decode("utf-16-le", "replace")


@pytest.mark.parametrize("size", [1, 3, 7])
def test_frames_of_real_answers_never_show_raw_markers(size: int) -> None:
    fixtures = Path(__file__).resolve().parents[1] / "fixtures" / "render"
    answer = "\n\n".join(p.read_text() for p in sorted(fixtures.glob("*.md")))
    stream = MarkdownStream(limit=500)
    for at in range(0, len(answer), size):
        stream.feed(answer[at : at + size])
        for page in stream.pages():
            shown = outside_code(page)
            assert "**" not in shown and "```" not in shown and "~~" not in shown, shown
            check_pages([page] if page.text else [], 500)


def test_many_streams_typing_markdown_each_resume_from_their_own_checkpoint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    # 64 answers typing formatted paragraphs at once, a frame after every 6 characters. One
    # checkpoint store shared by all (32 entries, emptied when full) made every frame parse its
    # paragraph again from the start: ~49 characters parsed per character typed. Each stream's
    # own, used again when a paragraph ends: ~3. The frames are what the full render gives.
    parsed = 0
    parse = markdown._PARSER.inline.parse

    def counting(src: str, md: Any, env: Any, out: Any) -> Any:
        nonlocal parsed
        parsed += len(src)
        return parse(src, md, env, out)

    monkeypatch.setattr(markdown._PARSER.inline, "parse", counting)
    rng = random.Random(7)
    words = ["alpha", "beta", "gamma", "delta", "epsilon", "zeta", "eta", "theta", "iota",
             "kappa", "lambda", "mu"]

    def paragraph() -> str:
        out = [f"{rng.choice(words)}{rng.randrange(1000)}" for _ in range(100)]
        return " ".join(f"**{w}**" if i % 10 == 3 else f"`{w}`" if i % 10 == 7 else w
                        for i, w in enumerate(out)) + "."

    texts = [f"{paragraph()}\n\n{paragraph()}\n\n{paragraph()}" for _ in range(64)]
    streams = [MarkdownStream(limit=4096) for _ in texts]
    for at in range(0, max(map(len, texts)), 6):
        for stream, text in zip(streams, texts, strict=True):
            if at < len(text):
                stream.feed(text[at : at + 6])
                stream.pages()
    typed = sum(map(len, texts))
    # 3.2 (deterministic: the words are seeded); 4.1 when an ended paragraph is parsed whole
    # again, 49 with one checkpoint store for all streams.
    assert parsed < 3.6 * typed, parsed / typed
    for stream, text in zip(streams, texts, strict=True):
        assert stream.pages() == [render_markdown(text)]
