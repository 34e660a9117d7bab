"""Reasoning ("thinking") kept apart from the answer, and how it is shown at the end."""

from __future__ import annotations

from enum import StrEnum

from .entities import EMPTY, strip
from .markdown import render_markdown
from .split import paginate
from .types import Entity, Rendered
from .utf16 import utf16_len

OPEN_TAG, CLOSE_TAG = "<think>", "</think>"
# A collapsed quote is a teaser: past this many UTF-16 units the reasoning is cut with "…".
COLLAPSED_PREVIEW = 1000


class ReasoningDisplay(StrEnum):
    """Mirrors the setting of the same name (render does not import the settings)."""

    HIDDEN = "hidden"
    COLLAPSED = "collapsed"
    FULL = "full"


class ThinkSplitter:
    """Separates `<think>…</think>` from answer text; tags may be split across deltas."""

    def __init__(self) -> None:
        self.inside = False
        self._held = ""  # a suffix that may be the start of a tag

    def feed(self, delta: str) -> tuple[str, str]:
        """Returns (answer text, reasoning text) found in `delta`."""
        text, self._held = self._held + delta, ""
        answer: list[str] = []
        reasoning: list[str] = []
        while text:
            tag = CLOSE_TAG if self.inside else OPEN_TAG
            side = reasoning if self.inside else answer
            at = text.find(tag)
            if at >= 0:
                side.append(text[:at])
                text = text[at + len(tag) :]
                self.inside = not self.inside
                continue
            keep = _tag_prefix(text, tag)
            side.append(text[: len(text) - keep])
            self._held = text[len(text) - keep :]
            break
        return "".join(answer), "".join(reasoning)

    def finish(self) -> tuple[str, str]:
        held, self._held = self._held, ""
        return ("", held) if self.inside else (held, "")


def _tag_prefix(text: str, tag: str) -> int:
    """Length of the longest suffix of `text` that is a proper prefix of `tag`."""
    for size in range(min(len(tag) - 1, len(text)), 0, -1):
        if text.endswith(tag[:size]):
            return size
    return 0


def reasoning_block(text: str, display: ReasoningDisplay, limit: int) -> Rendered:
    """The reasoning as a quote to put above the answer (empty when there is none to show)."""
    if display is ReasoningDisplay.HIDDEN or not text.strip():
        return EMPTY
    body = render_markdown(text)
    # Telegram can't nest quotes: the reasoning's own quotes become plain text inside ours.
    inner = tuple(e for e in body.entities if e.type not in ("blockquote", "expandable_blockquote"))
    body = Rendered(body.text, inner)
    kind = "blockquote"
    if display is ReasoningDisplay.COLLAPSED:
        kind = "expandable_blockquote"
        budget = max(2, min(COLLAPSED_PREVIEW, limit // 2) - 1)
        if utf16_len(body.text) > budget + 1:
            first = strip(paginate(body, budget)[0].rendered)
            body = Rendered(first.text + "…", first.entities)
    if not body.text:
        return EMPTY
    quote = Entity(kind, 0, utf16_len(body.text))
    return Rendered(body.text, (quote, *body.entities))
