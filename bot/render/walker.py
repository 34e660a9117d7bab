"""Walks markdown-it tokens and writes Telegram text + entities into a TextBuilder."""

from __future__ import annotations

import re
from dataclasses import dataclass

from markdown_it.token import Token

from .builder import TextBuilder
from .tables import Cell, layout
from .types import Rendered

BULLET = "• "
RULE = "———"
_LANGUAGE = re.compile(r"[\w#+.\-]{1,32}")
_ALIGN = {"text-align:right": "right", "text-align:center": "center"}


def is_web_url(url: str | None) -> bool:
    # Telegram rejects or mangles other schemes in text_link; relative links lead nowhere.
    return url is not None and url.lower().startswith(("http://", "https://"))


def plain_text(children: list[Token] | None) -> str:
    """The visible text of inline tokens, without formatting (for table cells and image alts)."""
    parts = []
    for child in children or ():
        if child.type in ("text", "text_special", "code_inline", "html_inline"):
            parts.append(child.content)
        elif child.type in ("softbreak", "hardbreak"):
            parts.append(" ")
        elif child.type == "image":
            parts.append(plain_text(child.children) or child.content)
    return "".join(parts)


@dataclass(slots=True)
class Table:
    rows: list[list[Cell]]
    header_rows: int
    aligns: list[str]  # per column
    row_lines: list[int]  # the source line of each row
    end: int  # index of table_close


def collect_table(tokens: list[Token], i: int) -> Table:
    """The cells of the table whose table_open is tokens[i]."""
    table = Table([], 0, [], [], i)
    align = "left"
    i += 1
    while tokens[i].type != "table_close":
        token = tokens[i]
        if token.type == "tr_open":
            table.rows.append([])
            table.row_lines.append(token.map[0] if token.map else -1)
        elif token.type in ("th_open", "td_open"):
            align = _ALIGN.get(str(token.attrGet("style")), "left")
            if not table.header_rows:
                table.aligns.append(align)
        elif token.type == "inline":
            table.rows[-1].append(Cell(plain_text(token.children).strip(), align))
        elif token.type == "thead_close":
            table.header_rows = len(table.rows)
        i += 1
    table.end = i
    return table


def render_tokens(tokens: list[Token]) -> Rendered:
    walker = _Walker()
    walker.blocks(tokens)
    return walker.out.build()


class _Walker:
    def __init__(self) -> None:
        self.out = TextBuilder()
        self.last_end = 0  # source line after the last leaf block: decides "\n" vs "\n\n"
        self.quote_depth = 0
        self.ordered: list[bool] = []
        self.indents: list[str] = []
        self.item_start = False  # the next block continues the line of a list marker
        self.links: list[bool] = []

    def start_block(self, token: Token, *, own_line: bool = False) -> None:
        if self.item_start:
            self.item_start = False
            if not own_line:
                return
        start = token.map[0] if token.map else self.last_end
        self.out.request_break(2 if start > self.last_end else 1)

    def end_block(self, token: Token) -> None:
        if token.map:
            self.last_end = token.map[1]

    def blocks(self, tokens: list[Token]) -> None:
        out = self.out
        i = 0
        while i < len(tokens):
            token = tokens[i]
            kind = token.type
            if kind == "inline":
                self.inline(token.children)
            elif kind == "paragraph_open":
                self.start_block(token)
                self.end_block(token)
            elif kind == "heading_open":
                self.start_block(token)
                self.end_block(token)
                out.open("bold")
            elif kind == "heading_close":
                out.close()
            elif kind in ("bullet_list_open", "ordered_list_open"):
                self.ordered.append(kind == "ordered_list_open")
            elif kind in ("bullet_list_close", "ordered_list_close"):
                self.ordered.pop()
            elif kind == "list_item_open":
                self.list_item(token)
            elif kind == "list_item_close":
                out.indent = self.indents.pop()
                self.item_start = False
            elif kind == "blockquote_open":
                self.start_block(token)
                # Telegram forbids nested quotes; inner ones stay inside the outer quote.
                if not self.quote_depth:
                    out.open("blockquote")
                self.quote_depth += 1
            elif kind == "blockquote_close":
                self.quote_depth -= 1
                if not self.quote_depth:
                    out.close()
            elif kind in ("fence", "code_block"):
                self.code(token)
            elif kind == "hr":
                self.start_block(token)
                self.end_block(token)
                out.write(RULE)
            elif kind == "table_open":
                i = self.table(tokens, i)
            elif kind == "html_block":
                self.start_block(token)
                self.end_block(token)
                out.write(token.content.strip())
            i += 1

    def list_item(self, token: Token) -> None:
        self.start_block(token)
        marker = f"{token.info or 1}. " if self.ordered and self.ordered[-1] else BULLET
        self.out.write(marker)
        self.indents.append(self.out.indent)
        self.out.indent += " " * len(marker)
        self.item_start = True

    def code(self, token: Token) -> None:
        self.start_block(token, own_line=True)
        self.end_block(token)
        content = token.content.strip("\n")
        if not content.strip():
            return
        info = token.info.strip().split(maxsplit=1)
        language = info[0] if info and _LANGUAGE.fullmatch(info[0]) else None
        self.out.open("pre", language=language)
        self.out.write(content, raw=True)
        self.out.close()

    def table(self, tokens: list[Token], i: int) -> int:
        """Lay the whole table out as one `pre`; returns the index of table_close."""
        self.start_block(tokens[i], own_line=True)
        self.end_block(tokens[i])
        table = collect_table(tokens, i)
        text = layout(table.rows, table.header_rows)
        if text.strip():
            self.out.open("pre")
            self.out.write(text, raw=True)
            self.out.close()
        return table.end

    def inline(self, children: list[Token] | None) -> None:
        out = self.out
        for child in children or ():
            kind = child.type
            if kind in ("text", "text_special"):
                out.write(child.content)
            elif kind in ("softbreak", "hardbreak"):
                out.request_break(1)
            elif kind in _TOGGLES:
                if kind.endswith("_open"):
                    out.open(_TOGGLES[kind])
                else:
                    out.close()
            elif kind == "code_inline":
                self.code_inline(child)
            elif kind == "link_open":
                url = str(child.attrGet("href") or "")
                linked = is_web_url(url) and not any(self.links)
                self.links.append(linked)
                if linked:
                    out.open("text_link", url=url)
            elif kind == "link_close":
                if self.links.pop():
                    out.close()
            elif kind == "image":
                self.image(child)
            elif kind == "html_inline":
                out.write(child.content)

    def code_inline(self, token: Token) -> None:
        if any(self.links):
            self.out.write(token.content)  # a link can't contain code (Bot API nesting rules)
            return
        self.out.open("code")
        self.out.write(token.content)
        self.out.close()

    def image(self, token: Token) -> None:
        # Telegram can't show inline images; a link to the picture keeps it reachable.
        alt = plain_text(token.children) or token.content
        url = str(token.attrGet("src") or "")
        if is_web_url(url) and not any(self.links):
            self.out.open("text_link", url=url)
            self.out.write(alt or "image")
            self.out.close()
        else:
            self.out.write(alt)


_TOGGLES = {
    "strong_open": "bold",
    "strong_close": "bold",
    "em_open": "italic",
    "em_close": "italic",
    "s_open": "strikethrough",
    "s_close": "strikethrough",
}
