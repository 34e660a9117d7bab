"""Markdown (as models write it) → Telegram plain text + entities.

Parsing is done by markdown-it-py: it is CommonMark-correct (so what users see matches what the
model meant), maintained, already a dependency, and yields a token stream with source maps (line
ranges), which keep the author's blank lines between blocks. Strikethrough and tables (GFM) are
enabled; raw HTML is not (it is shown as text, never interpreted).

Rendering works one top-level block at a time (see `blocks.py`) so a stream can cache the blocks
that are complete and re-render only the tail.
"""

from __future__ import annotations

import re

from markdown_it import MarkdownIt
from markdown_it.rules_core import StateCore
from markdown_it.rules_inline import StateInline
from markdown_it.token import Token
from markdown_it.utils import EnvType

from .blocks import BlockScanner
from .entities import join
from .partial import close_partial
from .sanitize import clean
from .types import Rendered
from .walker import render_tokens

# Inline parses are cached by content: while a long list or table streams, only the line being
# typed is new; every other line's inline tokens are reused.
_INLINE_CACHE_MAX = 512
# A paragraph being typed is parsed from its last checkpoint: a prefix, ending before a space,
# in which every delimiter is already matched, so nothing after it can change how it parses.
_CHECKPOINT_STEP = 48
_CHECKPOINTS_MAX = 32
# The key under which a parse's env carries the checkpoints of the stream it renders.
_TAIL_CHECKPOINTS = "bot.checkpoints"
# Left in text tokens, these may still pair with text further on (emphasis, code, links, math).
_OPEN_DELIMITER = re.compile(r"[*`\[$]|~~|(?<![^\W_])_|_(?![^\W_])")


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
        token = state.push("text", "", 0)
        token.content = src[pos:stop]
        token.meta = {"math": True}
    state.pos = stop
    return True


class Checkpoints:
    """Where to resume parsing a paragraph being typed: prefixes ending before a space in which
    every delimiter is already matched, so nothing after them can change how they parse.

    Each answer's tail keeps its own (`TailRenderer`); one store shared by all answers held 32
    and was emptied whenever it filled: with a thousand answers streaming Markdown, every frame
    parsed its paragraph again from the start (markdown-it's inline parser, in Python: a fifth
    of the bot's CPU at 1,000 answers, `BENCH_FORMATTED=1`)."""

    def __init__(self, limit: int = _CHECKPOINTS_MAX) -> None:
        self._limit = limit
        self._checkpoints: dict[str, list[Token]] = {}
        self._tried: dict[str, int] = {}  # checkpoint → content length at the last failed advance

    def parse(self, md: MarkdownIt, env: EnvType, content: str) -> list[Token]:
        # A snapshot of the keys: renders in other threads may clear the dict meanwhile.
        prefixes = tuple(self._checkpoints)
        base = max((p for p in prefixes if content.startswith(p)), key=len, default="")
        head = self._checkpoints.get(base) if base else None
        if head is None:
            base, head = "", []
        children = head + md.inline.parse(content[len(base) :], md, env, [])
        if len(content) - max(len(base), self._tried.get(base, 0)) >= _CHECKPOINT_STEP:
            self._advance(md, env, content, base, head)
        return children

    def _advance(
        self, md: MarkdownIt, env: EnvType, content: str, base: str, head: list[Token]
    ) -> None:
        at = content.rfind(" ", len(base) + 1, len(content) - 1)
        while at > len(base) and (content[at - 1].isspace() or content[at + 1].isspace()):
            at = content.rfind(" ", len(base) + 1, at)
        segment = content[len(base) : at]
        if at <= len(base) or "\\(" in segment or "\\[" in segment:
            self._tried[base] = len(content)
            return
        tokens = md.inline.parse(segment, md, env, [])
        if any(
            t.type == "text" and not t.meta and _OPEN_DELIMITER.search(t.content) for t in tokens
        ):
            self._tried[base] = len(content)
            return
        if len(self._checkpoints) >= self._limit:
            self._checkpoints.clear()
            self._tried.clear()
        self._checkpoints[content[:at]] = head + tokens


class _InlineCache:
    def __init__(self) -> None:
        self._cache: dict[str, list[Token]] = {}
        self._checkpoints = Checkpoints()  # for full parses; a tail being typed has its own

    def __call__(self, state: StateCore) -> None:
        md, env = state.md, state.env
        # Reference definitions change how links parse, so such documents bypass the caches.
        cacheable = not env.get("references")
        checkpoints = env.get(_TAIL_CHECKPOINTS)
        for token in state.tokens:
            if token.type != "inline":
                continue
            if cacheable:
                token.children = self.children(md, env, token.content, checkpoints)
            else:
                token.children = md.inline.parse(token.content, md, env, [])

    def children(self, md: MarkdownIt, env: EnvType, content: str,
                 checkpoints: Checkpoints | None = None) -> list[Token]:
        children = self._cache.get(content)
        if children is None:
            store = self._checkpoints if checkpoints is None else checkpoints
            children = store.parse(md, env, content)
            if len(self._cache) >= _INLINE_CACHE_MAX:
                self._cache.clear()
            self._cache[content] = children
        return children


def _make_parser(inline: _InlineCache) -> MarkdownIt:
    md = MarkdownIt("commonmark", {"html": False, "linkify": False, "typographer": False})
    md.enable(["strikethrough", "table"])
    # The walker reads escaped characters (`text_special`) itself; joining them is wasted work.
    md.disable("text_join")
    md.inline.ruler.before("escape", "math", _math)
    md.core.ruler.at("inline", inline)
    # markdown-it compiles its rule chains on first use: do it now, not in front of the first
    # answer's first frame (~0.3 ms there). Every rule chain the answers use runs once.
    md.parse(_WARM_UP)
    return md


_WARM_UP = "# a\n\n**b** _c_ `d` [e](f) ~~g~~\n\n- h\n\n> i\n\n| j |\n|---|\n| k |\n"


_INLINE = _InlineCache()
_PARSER = _make_parser(_INLINE)


def parse(source: str, checkpoints: Checkpoints | None = None) -> list[Token]:
    """Tokens of `source`; its paragraphs resumed from `checkpoints` (a stream's own) if given."""
    return _PARSER.parse(source, {_TAIL_CHECKPOINTS: checkpoints} if checkpoints else None)


def parse_inline(content: str, checkpoints: Checkpoints | None = None) -> list[Token]:
    """The children of an inline token with this content (cached like a full parse's), resumed
    from one of `checkpoints` (a stream's own) when given."""
    return _INLINE.children(_PARSER, {}, content, checkpoints)


def render_block(source: str, *, partial: bool = False,
                 checkpoints: Checkpoints | None = None) -> Rendered:
    """Render one top-level block (or any Markdown). `partial`: the source is still arriving.
    `checkpoints`: those of the stream that typed it (its paragraphs resume from them)."""
    if partial:
        source = close_partial(source)
    return render_tokens(parse(source, checkpoints))


def render_markdown(source: str) -> Rendered:
    """Render a complete answer: block by block, exactly as a stream of it would end up."""
    scanner = BlockScanner()
    rendered = Rendered("")
    for block in (*scanner.feed(clean(source)), *scanner.finish()):
        rendered = join(rendered, render_block(block.source), block.sep)
    return rendered
