"""Telegram counts text in UTF-16 code units; Python strings count code points."""

from __future__ import annotations


def utf16_len(text: str) -> int:
    # Code points above the BMP take two UTF-16 units (a surrogate pair).
    return len(text) + sum(1 for ch in text if ord(ch) > 0xFFFF)


def prefix_within(text: str, units: int) -> int:
    """Largest index i such that text[:i] fits in `units` UTF-16 units (never splits a pair)."""
    if len(text) * 2 <= units:
        return len(text)
    used = 0
    for i, ch in enumerate(text):
        used += 2 if ord(ch) > 0xFFFF else 1
        if used > units:
            return i
    return len(text)
