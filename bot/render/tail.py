"""Renders the unfinished last block of a stream, cheaply when only plain text was appended.

Most deltas add plain words to the line being typed. When the previous render ended in plain
paragraph text (or inside an open code fence) and the new characters cannot change how anything
before them parses, the new frame is the old one plus those characters: no parse needed. This is
what keeps a long answer streamed in small deltas linear rather than quadratic.
"""

from __future__ import annotations

import re

from markdown_it.token import Token

from .markdown import parse
from .partial import close_partial
from .types import Entity, Rendered
from .utf16 import utf16_len
from .walker import render_tokens

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
_UNSAFE_CODE_LINE = re.compile(r"[`~\t\n\r\x00\x0b\x0c]")


class TailRenderer:
    def __init__(self) -> None:
        self._source = ""
        self._rendered = Rendered("")
        self._mode: re.Pattern[str] | None = None  # what an appended delta must not contain
        self._space = ""  # trailing whitespace of the source, not shown yet

    def render(self, source: str) -> Rendered:
        old = self._source
        if self._mode is not None and len(source) >= len(old) and source.startswith(old):
            delta = source[len(old) :]
            if not self._mode.search(delta):
                self._append(delta)
                self._source = source
                return self._rendered
        self._source = source
        self._full(source)
        return self._rendered

    def _append(self, delta: str) -> None:
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

    def _full(self, source: str) -> None:
        fixed = close_partial(source)
        tokens = parse(fixed)
        self._rendered = render_tokens(tokens)
        core = source.rstrip()
        self._space = source[len(core) :]
        self._mode = None
        if core and fixed.rstrip() == core and self._rendered.text:
            self._mode = _append_mode(tokens, core, self._space)


def _append_mode(tokens: list[Token], core: str, space: str) -> re.Pattern[str] | None:
    """How the render ends, as the set of characters an appended delta must avoid (None: any)."""
    at = next(
        (i for i in range(len(tokens) - 1, -1, -1) if not tokens[i].type.endswith("_close")), -1
    )
    if at < 0:
        return None
    last = tokens[at]
    if last.type == "inline":
        before = tokens[at - 1].type if at else ""
        children = last.children or []
        plain_end = bool(children) and children[-1].type == "text"
        if before not in ("paragraph_open", "heading_open") or not plain_end or "\n" in space:
            return None
        line = core[core.rfind("\n") + 1 :].strip()
        if before == "heading_open":
            mode = _UNSAFE_HEADING
        else:
            mode = _UNSAFE_AFTER_DIGITS if line.isdigit() else _UNSAFE_TEXT
        return None if mode.search(core[-1]) else mode
    if last.type == "fence" and last.level == 0 and last.map and last.content.strip():
        opener = core.split("\n", last.map[0] + 1)[last.map[0]]
        if opener[:1] in "`~" and not _UNSAFE_CODE.search(core[-1]):
            return _UNSAFE_CODE
    if last.type == "code_block" and last.level == 0 and "\n" not in space:
        return _UNSAFE_CODE_LINE if not _UNSAFE_CODE_LINE.search(core[-1]) else None
    return None
