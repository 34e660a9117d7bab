"""Picks how each answer streams (drafts, edits, or one message at the end) and opens it."""

from __future__ import annotations

from aiogram.types import InlineKeyboardMarkup

from bot.clock import Clock
from bot.render import MarkdownStream

from .answer import AnswerStream, Mode, StreamOptions
from .fallback import DraftRefusals
from .outbound import Outbound
from .target import ChatTarget


class StreamManager:
    """Builds the right kind of stream for each answer; remembers draft-less chats."""

    def __init__(
        self, outbound: Outbound, clock: Clock, refusals: DraftRefusals, transport: str,
        options: StreamOptions,
    ) -> None:
        self._out = outbound
        self._clock = clock
        self._refusals = refusals
        self._transport = transport
        self._opt = options

    def mode_for(self, target: ChatTarget) -> Mode:
        if self._transport == "off":
            return Mode.OFF
        if self._transport == "edit":
            return Mode.EDIT
        if not target.private:
            return Mode.EDIT  # no drafts outside private chats
        if self._transport == "auto" and self._refusals.draftless(target.chat_id):
            return Mode.EDIT
        return Mode.DRAFT

    def open(
        self, target: ChatTarget, render: MarkdownStream,
        stop_markup: InlineKeyboardMarkup | None = None,
    ) -> AnswerStream:
        return AnswerStream(self._out, target, self.mode_for(target), self._opt, self._clock,
                            self._refusals, render, stop_markup)
