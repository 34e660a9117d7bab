"""Where an answer goes: the chat, the forum topic, and the message it replies to."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ChatTarget:
    chat_id: int
    # Forum topic; None for private chats, plain groups and the General topic (which has no id:
    # passing 1 fails with "message thread not found").
    thread_id: int | None = None
    private: bool = True
    # In groups the first message of an answer replies to the message that asked.
    reply_to: int | None = None
    # The message that asked, in any chat: the answer's messages come after it (`ledger.py`).
    asked: int | None = None

    @property
    def group(self) -> bool:
        return not self.private
