"""Incremental rendering of a streamed answer into Telegram-sized pages.

Contract with the transport: every page but the last is final once it exists (its text and
entities never change as more deltas arrive, because it has been sent as a real message), and
each page fits in `limit` UTF-16 units.

How it stays cheap: complete top-level blocks are rendered once and kept; only the unfinished
tail is re-rendered per frame (and usually not even that, see `tail.py`). Once a page is frozen,
only what follows it is rendered and split again.
"""

from __future__ import annotations

from .blocks import Block, BlockScanner
from .entities import EMPTY, join, rstrip, slice_text
from .markdown import render_block
from .reasoning import ReasoningDisplay, ThinkSplitter, reasoning_block
from .sanitize import DeltaCleaner
from .split import Page, page_start, paginate
from .tail import TailRenderer
from .types import Rendered

TELEGRAM_TEXT_LIMIT = 4096


class MarkdownStream:
    """Accumulates answer (and reasoning) deltas; `pages()` renders what has arrived so far."""

    def __init__(
        self, limit: int = TELEGRAM_TEXT_LIMIT, reasoning_display: str = "collapsed"
    ) -> None:
        self._limit = limit
        self._display = ReasoningDisplay(str(reasoning_display))
        self._cleaner, self._reasoning_cleaner = DeltaCleaner(), DeltaCleaner()
        self._think = ThinkSplitter()
        self._answer: list[str] = []
        self._reasoning: list[str] = []
        self._answer_seen = self._reasoning_seen = False
        self._blocks = BlockScanner()
        self._tail = TailRenderer()
        self._frozen: list[Rendered] = []
        self._open = EMPTY  # rendered complete blocks after the last frozen page
        self._covered = ""  # rendered text of the current tail already on frozen pages
        self._final: list[Rendered] | None = None

    @property
    def source(self) -> str:
        """The answer's Markdown so far, without reasoning."""
        return "".join(self._answer)

    @property
    def reasoning(self) -> str:
        return "".join(self._reasoning)

    @property
    def thinking(self) -> bool:
        """True while reasoning has arrived but no answer text yet."""
        return self._reasoning_seen and not self._answer_seen

    def feed(self, delta: str) -> None:
        self._check_open()
        answer, reasoning = self._think.feed(self._cleaner.feed(delta))
        self._add_reasoning(reasoning)
        self._add_answer(answer)

    def feed_reasoning(self, delta: str) -> None:
        """Reasoning from a separate channel (`reasoning_content`)."""
        self._check_open()
        self._add_reasoning(self._reasoning_cleaner.feed(delta))

    def pages(self) -> list[Rendered]:
        """The frames to show now: the frozen pages, then the live one.

        The live (last) page may be empty: before any answer text (see `thinking` for what to
        show then), or for a moment after a page froze. Frozen pages are never empty.
        """
        if self._final is not None:
            return list(self._final)
        full_tail = self._tail.render(self._blocks.tail) if self._blocks.tail else EMPTY
        tail, at = self._uncovered(full_tail)
        doc = join(self._open, tail, self._blocks.tail_sep)
        parts = paginate(doc, self._limit)
        if len(parts) > 1:
            self._freeze(parts, full_tail.text, tail, at)
        return [*self._frozen, parts[-1].rendered]

    def finish(self) -> list[Rendered]:
        """The final pages, none empty (no answer: [])."""
        if self._final is not None:
            return list(self._final)
        answer, reasoning = self._think.finish()
        self._add_reasoning(reasoning + self._reasoning_cleaner.finish())
        self._add_answer(answer + self._cleaner.finish())
        self._settle_all(self._blocks.finish())
        doc = self._open
        if not self._frozen and doc.text:
            doc = join(reasoning_block(self.reasoning, self._display, self._limit), doc, "\n")
        pages = [page.rendered for page in paginate(doc, self._limit) if page.rendered.text]
        self._final = [*self._frozen, *pages]
        return list(self._final)

    def _check_open(self) -> None:
        if self._final is not None:
            raise RuntimeError("the stream is finished")

    def _add_reasoning(self, text: str) -> None:
        if text:
            self._reasoning.append(text)
            self._reasoning_seen = self._reasoning_seen or bool(text.strip())

    def _add_answer(self, text: str) -> None:
        if not text:
            return
        self._answer.append(text)
        self._answer_seen = self._answer_seen or bool(text.strip())
        self._settle_all(self._blocks.feed(text))

    def _settle_all(self, blocks: list[Block]) -> None:
        for block in blocks:
            # Just typed in the tail: its paragraphs resume from the tail's checkpoints.
            rendered, _ = self._uncovered(render_block(block.source,
                                                       checkpoints=self._tail.checkpoints))
            self._covered = ""
            self._open = join(self._open, rendered, block.sep)

    def _uncovered(self, rendered: Rendered) -> tuple[Rendered, int]:
        """What of the tail's rendering is not on a frozen page yet, and where that starts."""
        covered = self._covered
        if not covered:
            return rendered, 0
        at = page_start(rendered, skip_covered(rendered.text, covered))
        return rstrip(slice_text(rendered, at)), at

    def _freeze(self, parts: list[Page], full_tail: str, tail: Rendered, tail_at: int) -> None:
        if not self._frozen:
            # The reasoning goes above the answer; once page 1 is sent that place is gone.
            block = reasoning_block(self.reasoning, self._display, self._limit)
            self._frozen.extend(p.rendered for p in paginate(block, self._limit) if p.rendered.text)
        self._frozen.extend(p.rendered for p in parts[:-1] if p.rendered.text)
        cut = parts[-1].start
        open_len = len(self._open.text)
        if cut < open_len or not tail.text:
            self._open = rstrip(slice_text(self._open, cut))  # `cut` is a page start already
            return
        tail_start = open_len + len(self._blocks.tail_sep) if open_len else 0
        self._covered = full_tail[: tail_at + (cut - tail_start)]
        self._open = EMPTY


# Characters a frozen page may have shown differently: markers a partial render hid or turned
# into formatting, and the padding of a table whose columns widened since.
MARKUP = frozenset(" \t\n*_~`[]()<>!#|\\$-+")


def skip_covered(text: str, covered: str) -> int:
    """Where `text` (a fresh render of the tail) continues after what is already on frozen pages.

    Normally `covered` is a prefix of `text`. When the tail re-parsed differently (an unclosed
    `**` shown as bold in progress turned out literal; a table grew wider), `covered` is matched
    skipping only such markup; failing that, only the common prefix is skipped, so text may
    repeat on the next page, but none is lost.
    """
    if text.startswith(covered):
        return len(covered)
    i = 0
    for ch in covered:
        while i < len(text) and text[i] != ch and text[i] in MARKUP:
            i += 1
        if i >= len(text) or text[i] != ch:
            return next(
                (k for k, (a, b) in enumerate(zip(text, covered, strict=False)) if a != b), 0
            )
        i += 1
    return i
