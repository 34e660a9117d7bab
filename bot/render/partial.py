"""Make the tail of a still-arriving answer render sanely.

Only the last line is touched (plus a table header being typed), so what is already on screen
keeps its shape as more arrives:
- an unclosed `**bold`, `_it`, `~~s~~` or `` `code `` is closed, so it shows as formatting in
  progress instead of raw markers; a delimiter run at the very end is hidden until it is resolved;
- a half link `[text](htt` shows its text; a line holding only markers (`-`, `#`, `>`, `1.`,
  a fence being typed) is hidden;
- a table header gets a synthetic delimiter row, so it is laid out as a table at once;
- inside an open fence only a closing fence being typed is hidden.
"""

from __future__ import annotations

import re
import unicodedata

from .blocks import DELIMITER_ROW, open_fence, track_fence

_MARKER_ONLY = re.compile(r"[ \t]*(?:(?:[#>*+=|:~`_\-]+|\d{1,9}[.)])[ \t]*)*")
_TRAILING_DELIMITERS = re.compile(r"[\s*_~`\\]+$")
_HALF_LINK = re.compile(r"(!?\[[^\[\]]*\])\([^()\s]*$")
PIPE_ROW = re.compile(r" {0,3}\|")
_CELL_SPLIT = re.compile(r"(?<!\\)\|")
_SPECIAL = re.compile(r"[\\`*_~]")


def close_partial(source: str) -> str:
    lines = source.split("\n")
    last = lines[-1]
    if open_fence(lines[:-1]) is not None:
        if not last.strip(" \t`~"):
            lines.pop()
        return "\n".join(lines)
    if track_fence(None, last) is not None:
        return source  # a fence opener being typed renders as an empty (invisible) code block
    if _MARKER_ONLY.fullmatch(last):
        lines.pop()
    else:
        lines[-1] = close_last_line(last)
    if lines and _is_table_header(lines):
        lines.append("|" + "---|" * _columns(lines[-1]))
    return "\n".join(lines)


def is_marker_only(line: str) -> bool:
    """The line holds only block markers (`-`, `#`, `>`, `1.`, `|`…) and nothing to show yet."""
    return _MARKER_ONLY.fullmatch(line) is not None


def close_last_line(line: str) -> str:
    """The fixes for a last line that holds text: half link, then open spans closed."""
    return close_inline(_HALF_LINK.sub(r"\1()", line))


def close_inline(line: str) -> str:
    """Close the emphasis and code spans left open at the end of `line`."""
    line = _TRAILING_DELIMITERS.sub("", line)
    stack: list[str] = []
    code = ""
    n = len(line)
    match = _SPECIAL.search(line)
    while match:
        i = match.start()
        ch = line[i]
        if ch == "\\" and not code:  # an escape; inside code a backslash is literal
            match = _SPECIAL.search(line, i + 2)
            continue
        j = i + 1
        while j < n and line[j] == ch:
            j += 1
        run = line[i:j]
        if ch == "`":
            code = run if not code else ("" if run == code else code)
        elif not code and ch != "\\":
            _delimiter(stack, run, line[i - 1] if i else " ", line[j] if j < n else " ")
        match = _SPECIAL.search(line, j)
    return line + code + "".join(reversed(stack))


def _punct(ch: str) -> bool:
    return unicodedata.category(ch)[0] in "PS"


def _delimiter(stack: list[str], run: str, before: str, after: str) -> None:
    """CommonMark's flanking rules, decide whether `run` closes an open run or opens one."""
    ch = run[0]
    if ch == "~" and len(run) != 2:
        return  # markdown-it strikes through with exactly two tildes
    left = not after.isspace() and (not _punct(after) or before.isspace() or _punct(before))
    right = not before.isspace() and (not _punct(before) or after.isspace() or _punct(after))
    can_open, can_close = left, right
    if ch == "_":
        can_open = left and (not right or _punct(before))
        can_close = right and (not left or _punct(after))
    if can_close:
        for k in range(len(stack) - 1, -1, -1):
            if stack[k][0] == ch:
                del stack[k:]
                return
    # Intraword openers ("2*3", "snake_case") are left alone: they are rarely emphasis.
    if can_open and not before.isalnum():
        stack.append(run)


def _columns(row: str) -> int:
    cells = _CELL_SPLIT.split(row.strip())
    if cells and not cells[0].strip():
        cells = cells[1:]
    if cells and not cells[-1].strip():
        cells = cells[:-1]
    return len(cells)


def _is_table_header(lines: list[str]) -> bool:
    """The last line starts a pipe table whose delimiter row has not arrived yet."""
    if not PIPE_ROW.match(lines[-1]) or not _columns(lines[-1]):
        return False
    if len(lines) == 1:
        return True
    before = lines[-2]
    return not PIPE_ROW.match(before) and not (before.strip() and DELIMITER_ROW.fullmatch(before))
