"""Normalise raw deltas before they are parsed or counted in UTF-16 units."""

from __future__ import annotations

import re

_SURROGATE = re.compile("[\ud800-\udfff]")


class DeltaCleaner:
    """CRLF/CR → LF and NUL → U+FFFD; a surrogate pair split across deltas is rejoined, a lone
    surrogate becomes U+FFFD (Telegram rejects text that is not valid UTF-16)."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, delta: str) -> str:
        text, self._held = self._held + delta, ""
        if text and (text[-1] == "\r" or "\ud800" <= text[-1] <= "\udbff"):
            text, self._held = text[:-1], text[-1]
        return clean(text)

    def finish(self) -> str:
        text, self._held = self._held, ""
        return clean(text)


def clean(text: str) -> str:
    if "\r" in text:
        text = text.replace("\r\n", "\n").replace("\r", "\n")
    if "\x00" in text:
        text = text.replace("\x00", "\ufffd")
    if _SURROGATE.search(text):
        text = text.encode("utf-16-le", "surrogatepass").decode("utf-16-le", "replace")
    return text
