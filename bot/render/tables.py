"""Tables as aligned monospace text: Telegram has no table entity, so they go in a `pre`."""

from __future__ import annotations

import unicodedata
from dataclasses import dataclass


@dataclass(slots=True)
class Cell:
    text: str
    align: str  # "left" | "right" | "center"


def display_width(text: str) -> int:
    """Columns a string takes in a monospace font: wide CJK and emoji count 2, marks count 0."""
    if text.isascii():
        return len(text)
    width = 0
    for ch in text:
        if (
            unicodedata.combining(ch)
            or ch in "\u200d\ufe0f\ufe0e"
            or "\U0001f3fb" <= ch <= "\U0001f3ff"
        ):
            continue
        wide = unicodedata.east_asian_width(ch) in "WF" or ord(ch) >= 0x1F000
        width += 2 if wide else 1
    return width


def _pad(cell: Cell, width: int) -> str:
    gap = width - display_width(cell.text)
    if cell.align == "right":
        return " " * gap + cell.text
    if cell.align == "center":
        left = gap // 2
        return " " * left + cell.text + " " * (gap - left)
    return cell.text + " " * gap


def layout(rows: list[list[Cell]], header_rows: int = 1) -> str:
    """Rows of cells as lines joined by " | ", with a rule under the header."""
    columns = max((len(row) for row in rows), default=0)
    if not columns:
        return ""
    widths = [0] * columns
    for row in rows:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], display_width(cell.text))
    lines = []
    for n, row in enumerate(rows):
        cells = row + [Cell("", "left")] * (columns - len(row))
        # The first column stays left-aligned: a line starting with spaces loses them when it
        # opens a message (Telegram trims), which would shift that whole row.
        cells[0] = Cell(cells[0].text, "left")
        lines.append(" | ".join(_pad(c, w) for c, w in zip(cells, widths, strict=True)).rstrip())
        if n == header_rows - 1:
            lines.append("-+-".join("-" * max(w, 1) for w in widths))
    return "\n".join(lines)
