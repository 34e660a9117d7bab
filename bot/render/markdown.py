"""Markdown (as models write it) → Telegram plain text + entities.

Parsing is done by markdown-it-py: it is CommonMark-correct (so what users see matches what the
model meant), maintained, already a dependency, and yields a token stream with source maps (line
ranges), which keep the author's blank lines between blocks. Strikethrough and tables (GFM) are
enabled; raw HTML is not (it is shown as text, never interpreted).

Rendering works one top-level block at a time (see `blocks.py`) so a stream can cache the blocks
that are complete and re-render only the tail.
"""

from __future__ import annotations

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token

from .blocks import BlockScanner
from .entities import join
from .partial import close_partial
from .types import Rendered
from .walker import render_tokens

# Inline parses are cached by content: while a long list or table streams, only the line being
# typed is new; every other line's inline tokens are reused.
_INLINE_CACHE_MAX = 2048


def _math(state: StateInline, silent: bool) -> bool:
    """Keep LaTeX ($…$, $$…$$, \\(…\\), \\[…\\]) verbatim: no emphasis, no escapes eaten."""
    src, pos, end = state.src, state.pos, state.posMax
    if src[pos] == "\\":
        if pos + 1 >= end or src[pos + 1] not in "([":
            return False
        close = src.find("\\)" if src[pos + 1] == "(" else "\\]", pos + 2, end)
        if close < 0:
            return False
        stop = close + 2
    elif src.startswith("$$", pos):
        close = src.find("$$", pos + 2, end)
        if close <= pos + 2:
            return False
        stop = close + 2
    elif src[pos] == "$":
        # Pandoc's rule, so prices ("$5 and $10") stay text: no space inside the dollars and no
        # digit right after the closing one.
        if pos + 1 >= end or src[pos + 1] in " \t\n$":
            return False
        close = pos + 1
        while True:
            close = src.find("$", close + 1, end)
            if close < 0:
                return False
            if src[close - 1] not in " \t\n\\" and not src[close + 1 : close + 2].isdigit():
                break
        stop = close + 1
    else:
        return False
    if not silent:
        state.append_pending(src[pos:stop])
    state.pos = stop
    return True


class _InlineCache:
    def __init__(self) -> None:
        self._cache: dict[str, list[Token]] = {}

    def __call__(self, state: StateCore) -> None:
        md, env = state.md, state.env
        # Reference definitions change how links parse, so such documents bypass the cache.
        cacheable = not env.get("references")
        for token in state.tokens:
            if token.type != "inline":
                continue
            children = self._cache.get(token.content) if cacheable else None
            if children is None:
                children = md.inline.parse(token.content, md, env, [])
                if cacheable:
                    if len(self._cache) >= _INLINE_CACHE_MAX:
                        self._cache.clear()
                    self._cache[token.content] = children
            token.children = children


def make_parser() -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["strikethrough", "table"])
    # The walker reads escaped characters (`text_special`) itself; joining them is wasted work.
    md.disable("text_join")
    md.inline.ruler.before("escape", "math", _math)
    md.core.ruler.at("inline", _InlineCache())
    return md


_PARSER = make_parser()


def parse(source: str) -> list[Token]:
    return _PARSER.parse(source)


def render_block(source: str, *, partial: bool = False) -> Rendered:
    """Render one top-level block (or any Markdown). `partial`: the source is still arriving."""
    if partial:
        source = close_partial(source)
    return render_tokens(parse(source))


def render_markdown(source: str) -> Rendered:
    """Render a complete answer: block by block, exactly as a stream of it would end up."""
    scanner = BlockScanner()
    rendered = Rendered("")
    for block in (*scanner.feed(source), *scanner.finish()):
        rendered = join(rendered, render_block(block.source), block.sep)
    return rendered
