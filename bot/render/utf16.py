"""Telegram counts text in UTF-16 code units; Python strings count code points."""

from __future__ import annotations


def utf16_len(text: str) -> int:
    # Code points above the BMP take two UTF-16 units (a surrogate pair). Encoding is done in C,
    # which matters: the stream measures its pages on every frame.
    if text.isascii():
        return len(text)
    return len(text.encode("utf-16-le", "surrogatepass")) // 2


def prefix_within(text: str, units: int) -> int:
    """Largest index i such that text[:i] fits in `units` UTF-16 units (never splits a pair)."""
    if utf16_len(text) <= units:
        return len(text)
    if text[:units].isascii():
        return units
    used = 0
    for i, ch in enumerate(text):
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > units:
            return i
    return len(text)


def char_index(text: str, units: int) -> int:
    """The index of the character that starts at UTF-16 offset `units` (inverse of utf16_len)."""
    if text.isascii():
        return min(units, len(text))
    used = 0
    for i, ch in enumerate(text):
        if used >= units:
            return i
        used += 2 if ord(ch) > 0xFFFF else 1
    return len(text)
