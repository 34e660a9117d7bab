"""Renders the unfinished last block of a stream, skipping work that the new text cannot affect.

Four tiers, cheapest first:
- append: the previous frame ended in plain paragraph text (or inside an open code fence) and the
  delta holds only characters that cannot change how anything before them parses: the new frame
  is the old one plus those characters;
- inline: the delta stays on the last line of a paragraph or heading: the block structure is
  reused and only that paragraph's inline content is parsed again (from a checkpoint);
- table: the delta stays on the last row of a table: the other rows are reused;
- full: close the partial input and parse the tail.
This is what keeps a long answer streamed in small deltas linear rather than quadratic.
"""

from __future__ import annotations

import re

from markdown_it.common.utils import mdTrim
from markdown_it.rules_block.table import escapedSplit
from markdown_it.token import Token

from .entities import strip
from .markdown import Checkpoints, parse, parse_inline
from .partial import PIPE_ROW, close_last_line, close_partial, is_marker_only
from .tables import Cell, layout
from .types import Entity, Rendered
from .utf16 import utf16_len
from .walker import Table, collect_table, plain_text, render_tokens

# Characters that can change the parse of what precedes them on the same line (delimiters,
# brackets, escapes, entities, math), and any whitespace but a plain space (newlines included).
_UNSAFE = (
    r"*_~`\\\[\]()<>&;$"
    r"\x00-\x1f\x7f\u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000"
)
_UNSAFE_TEXT = re.compile(f"[{_UNSAFE}]")
# In a heading a trailing "#" may be a closing sequence; after a line of digits "." makes "1.".
_UNSAFE_HEADING = re.compile(f"[{_UNSAFE}#]")
_UNSAFE_AFTER_DIGITS = re.compile(f"[{_UNSAFE}.]")
_UNSAFE_CODE = re.compile(r"[`~\t\r\x00\x0b\x0c]")
# What a delta must avoid to stay on the current line of a paragraph (or heading).
# A line whose start is decided: past any block markers it holds a character no marker (list,
# heading, quote, rule, fence) is made of, so appending text cannot turn it into one. A line
# starting with "|" is never decided: it may become a table header (see partial.py).
_DECIDED = re.compile(r"(?![ \t]*\|)[-+*=_#>`~|:.)\d \t]*[^-+*=_#>`~|:.)\d\s]")
_NEW_LINE = re.compile(r"[\n\r\t\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")
_NEW_LINE_HEADING = re.compile(r"[\n\r\t\x0b\x0c\x1c-\x1e\x85\u2028\u2029#]")


# A tail resumes from its longest checkpoint; a few more cover the other paragraphs of a block
# parsed whole again (a list's items, a quote's paragraphs).
TAIL_CHECKPOINTS = 8


class TailRenderer:
    def __init__(self) -> None:
        self._source = ""
        self._rendered = Rendered("")
        self._append: re.Pattern[str] | None = None  # what a delta must avoid to just append
        self._space = ""  # trailing whitespace of the source, not shown yet
        self._tokens: list[Token] = []
        self._inline: re.Pattern[str] | None = None  # what a delta must avoid for the inline tier
        self._at = -1  # index of the last inline token, the paragraph being typed
        self._head = ""  # the fixed source before the last line
        self._content_head = ""  # that inline token's content before its last line
        self._prefix = 0  # length of the container markers before the last line's content
        self._table: Table | None = None  # the table being typed, when the tail is just that
        # The paragraph being typed is parsed again from its latest checkpoint (markdown.py).
        self.checkpoints = Checkpoints(limit=TAIL_CHECKPOINTS)

    def render(self, source: str) -> Rendered:
        old = self._source
        self._source = source
        if len(source) >= len(old) and source.startswith(old):
            delta = source[len(old) :]
            if self._append is not None and not self._append.search(delta):
                self._grow(delta)
                return self._rendered
            if (
                self._inline is not None
                and not self._inline.search(delta)
                and self._reinline(source)
            ):
                return self._rendered
            if self._table is not None and not _NEW_LINE.search(delta) and self._retable(source):
                return self._rendered
        self._full(source)
        return self._rendered

    def _grow(self, delta: str) -> None:
        pending = self._space + delta
        shown = pending.rstrip()
        self._space = pending[len(shown) :]
        if not shown:
            return
        old = self._rendered
        end = utf16_len(old.text)
        grow = utf16_len(shown)
        # Entities that reach the end are the blocks being typed in (heading, quote, code).
        entities = tuple(
            Entity(e.type, e.offset, e.length + grow, e.url, e.language)
            if e.offset + e.length == end
            else e
            for e in old.entities
        )
        self._rendered = Rendered(old.text + shown, entities)
        self._inline = None  # the tokens no longer match the text

    def _reinline(self, source: str) -> bool:
        line = source[source.rfind("\n") + 1 :]
        if is_marker_only(line):
            return False
        fixed_line = close_last_line(line)
        if len(fixed_line) <= self._prefix:
            return False
        last = self._tokens[self._at]
        content = self._content_head + fixed_line[self._prefix :]
        tokens = list(self._tokens)
        tokens[self._at] = last.copy(content=content,
                                     children=parse_inline(content, self.checkpoints))
        self._settle(source, self._head + fixed_line, tokens)
        return True

    def _retable(self, source: str) -> bool:
        table = self._table
        assert table is not None
        line = source[source.rfind("\n") + 1 :]
        if is_marker_only(line):
            return False
        cells = [
            Cell(plain_text(parse_inline(content)).strip(), align)
            for content, align in zip(
                _row_cells(close_last_line(line), len(table.aligns)), table.aligns, strict=True
            )
        ]
        text = layout([*table.rows[:-1], cells], table.header_rows)
        self._rendered = strip(Rendered(text, (Entity("pre", 0, utf16_len(text)),)))
        return True

    def _full(self, source: str) -> None:
        fixed = close_partial(source)
        self._settle(source, fixed, parse(fixed, self.checkpoints))

    def _settle(self, source: str, fixed: str, tokens: list[Token]) -> None:
        self._tokens = tokens
        self._rendered = render_tokens(tokens)
        core = source.rstrip()
        self._space = source[len(core) :]
        self._append = self._inline = None
        if core and fixed.rstrip() == core and self._rendered.text:
            self._append = _append_mode(tokens, core, self._space)
        self._prepare_inline(source, fixed, tokens)
        self._table = _table_being_typed(source, fixed, tokens)

    def _prepare_inline(self, source: str, fixed: str, tokens: list[Token]) -> None:
        """Enable the inline tier when the last line of the source is the paragraph's last line."""
        at = _last_content(tokens)
        if at < 1 or tokens[at].type != "inline" or source.count("\n") != fixed.count("\n"):
            return
        lines = tokens[at].map
        if not lines or lines[1] != fixed.count("\n") + 1:
            return
        before = tokens[at - 1].type
        content = tokens[at].content
        if before not in ("paragraph_open", "heading_open") or content.startswith("["):
            return  # "[a]: url" would turn the paragraph into a link definition
        if "]:" in fixed:
            return  # link definitions change how the paragraph parses; keep the full parse
        cut = fixed.rfind("\n") + 1
        fixed_line, content_line = fixed[cut:], content[content.rfind("\n") + 1 :]
        if not content_line or not fixed_line.endswith(content_line):
            return
        if not _DECIDED.match(fixed_line):
            return
        self._at, self._head = at, fixed[:cut]
        self._content_head = content[: len(content) - len(content_line)]
        self._prefix = len(fixed_line) - len(content_line)
        self._inline = _NEW_LINE_HEADING if before == "heading_open" else _NEW_LINE


def _table_being_typed(source: str, fixed: str, tokens: list[Token]) -> Table | None:
    """The table, if the tail is one table whose last body row is the source's last line."""
    if not tokens or tokens[0].type != "table_open" or tokens[-1].type != "table_close":
        return None
    last = source.count("\n")
    if fixed.count("\n") != last or "]:" in fixed:
        return None
    table = collect_table(tokens, 0)
    if table.end != len(tokens) - 1 or table.header_rows >= len(table.rows):
        return None
    if table.row_lines[-1] != last or not PIPE_ROW.match(source[source.rfind("\n") + 1 :]):
        return None  # a row not starting with "|" might yet turn into another block
    return table


def _row_cells(line: str, columns: int) -> list[str]:
    """The cell contents of a body row, split as markdown-it's table rule does."""
    cells = escapedSplit(mdTrim(line))
    if cells and cells[0] == "":
        cells.pop(0)
    if cells and cells[-1] == "":
        cells.pop()
    return [mdTrim(cells[i]) if i < len(cells) and cells[i] else "" for i in range(columns)]


def _last_content(tokens: list[Token]) -> int:
    for i in range(len(tokens) - 1, -1, -1):
        if not tokens[i].type.endswith("_close"):
            return i
    return -1


def _append_mode(tokens: list[Token], core: str, space: str) -> re.Pattern[str] | None:
    """How the render ends, as the set of characters an appended delta must avoid (None: any)."""
    at = _last_content(tokens)
    if at < 0:
        return None
    last = tokens[at]
    if not last.map or last.map[1] != core.count("\n") + 1:
        return None  # the source ends past the last block (say, in a link definition)
    if last.type == "inline":
        before = tokens[at - 1].type if at else ""
        children = last.children or []
        plain_end = bool(children) and children[-1].type == "text" and not children[-1].meta
        if before not in ("paragraph_open", "heading_open") or not plain_end or "\n" in space:
            return None
        if last.content.startswith("["):
            return None  # "[a]: url" would turn the paragraph into a link definition
        line = core[core.rfind("\n") + 1 :]
        if not _DECIDED.match(line):
            return None
        line = line.strip()
        if before == "heading_open":
            mode = _UNSAFE_HEADING
        else:
            mode = _UNSAFE_AFTER_DIGITS if line.isdigit() else _UNSAFE_TEXT
        return None if mode.search(core[-1]) else mode
    if last.type == "fence" and last.level == 0 and last.map and last.content.strip():
        opener = core.split("\n", last.map[0] + 1)[last.map[0]]
        if opener.startswith(("`", "~")) and not _UNSAFE_CODE.search(core[-1]):
            return _UNSAFE_CODE
    if last.type == "code_block" and last.level == 0 and "\n" not in space:
        # close_partial can't tell an indented code line from text, so the same rules apply.
        return _UNSAFE_TEXT if not _UNSAFE_TEXT.search(core[-1]) else None
    return None
