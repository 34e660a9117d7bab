"""Finds where top-level Markdown blocks end, incrementally, so finished blocks render once.

A block ends at a blank line that is followed by a line which cannot continue it: outside a
fenced code block, starting at column 0 (or indented 1–3 spaces when no list item could own it).
Such a line always starts a new top-level block in CommonMark, so rendering blocks one by one
gives the same result as rendering the whole (link reference definitions aside).

Inside a list, a new item at column 0 also ends the block before it (joined by a single newline):
a long tight list then costs one item per frame, not the whole list. The renderer numbers items
as the source does and ignores tight/loose, so the output is the same as for the whole list.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

_FENCE = re.compile(r" {0,3}(`{3,}|~{3,})(.*)")
_LIST_ITEM = re.compile(r"[ ]{0,3}(?:[-+*]|\d{1,9}[.)])(?:[ \t]|$)")
_TOP_ITEM = re.compile(r"(?:[-+*]|\d{1,9}[.)])[ \t]+\S")

DELIMITER_ROW = re.compile(r" {0,3}\|?\s*:?-+:?\s*(?:\|\s*:?-+:?\s*)*\|?\s*")

# The fence character, the length of its run, and whether it may still be a table header
# (markdown-it tries tables first: "```|" followed by "---" is a one-column table).
Fence = tuple[str, int, bool]


@dataclass(frozen=True, slots=True)
class Block:
    source: str
    sep: str  # what separates it from the previous block once rendered


def track_fence(fence: Fence | None, line: str) -> Fence | None:
    """The fence state after `line` (a complete line) given the state before it."""
    if fence is not None:
        char, size, maybe_table = fence
        if maybe_table and DELIMITER_ROW.fullmatch(line):
            return None
        stripped = line.strip()
        indent = len(line) - len(line.lstrip(" "))
        if indent <= 3 and len(stripped) >= size and stripped == char * len(stripped):
            return None
        return (char, size, False) if maybe_table else fence
    match = _FENCE.match(line)
    if match and (match[1][0] == "~" or "`" not in match[2]):
        return match[1][0], len(match[1]), "|" in match[2]
    return None


def open_fence(lines: list[str]) -> Fence | None:
    fence: Fence | None = None
    for line in lines:
        fence = track_fence(fence, line)
    return fence


def _indent(line: str) -> int:
    width = 0
    for ch in line:
        if ch == " ":
            width += 1
        elif ch == "\t":
            width += 4 - width % 4
        else:
            break
    return width


class BlockScanner:
    """Feed source text; get back the blocks that are complete. `tail` is the unfinished rest."""

    def __init__(self) -> None:
        self._reset()

    def _reset(self) -> None:
        self.tail = ""
        self.tail_sep = "\n\n"  # what separates the tail from the block before it
        self.fence: Fence | None = None  # the fence open in the tail, after its complete lines
        self._line = 0  # index in tail of the first line not examined yet
        self._blank_at: int | None = None  # where the current run of blank lines began
        self._has_list = False
        self._in_list = False  # the tail began with a list item at column 0

    def feed(self, text: str) -> list[Block]:
        self.tail += text
        done: list[Block] = []
        while True:
            end = self.tail.find("\n", self._line)
            line = self.tail[self._line :] if end < 0 else self.tail[self._line : end]
            sep = self._starts_block(line)
            if sep:
                self._cut(done, sep)
                continue  # the tail was re-based; find this line again
            if end < 0:
                return done
            self._track(line)
            self._line = end + 1

    def finish(self) -> list[Block]:
        source, sep = self.tail.rstrip(), self.tail_sep
        self._reset()
        return [Block(source, sep)] if source.strip() else []

    def _starts_block(self, line: str) -> str:
        """The separator if `line` starts a new block, else ""."""
        if self.fence is not None or not line.strip():
            return ""
        if self._blank_at is not None:
            indent = _indent(line)
            return "\n\n" if indent == 0 or (indent <= 3 and not self._has_list) else ""
        return "\n" if self._in_list and self._line and _TOP_ITEM.match(line) else ""

    def _cut(self, done: list[Block], sep: str) -> None:
        end = self._line if self._blank_at is None else self._blank_at
        source = self.tail[:end].rstrip()
        if source.strip():
            done.append(Block(source, self.tail_sep))
            self.tail_sep = sep
        self.tail = self.tail[self._line :]
        self._line, self._blank_at, self._has_list, self._in_list = 0, None, False, False

    def _track(self, line: str) -> None:
        if self.fence is not None:
            self.fence = track_fence(self.fence, line)
            return
        if not line.strip():
            if self._blank_at is None:
                self._blank_at = self._line
            return
        if not self._line and _TOP_ITEM.match(line):
            self._in_list = True
        self._blank_at = None
        self.fence = track_fence(None, line)
        if _LIST_ITEM.match(line):
            self._has_list = True
