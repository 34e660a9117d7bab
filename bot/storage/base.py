"""The conversation store: what the bot remembers between messages and across restarts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, Protocol


@dataclass(frozen=True, slots=True)
class Turn:
    role: Literal["user", "assistant"]
    content: str
    # Group turns carry their author so the model knows who speaks.
    name: str | None = None
    # Token count when the endpoint reported it (usage); None → estimated from characters.
    tokens: int | None = None


@dataclass(frozen=True, slots=True)
class ConversationKey:
    """A private chat, a group, or one forum topic (thread 0 = no topic / General)."""

    chat_id: int
    thread_id: int = 0

    def __str__(self) -> str:
        return f"{self.chat_id}:{self.thread_id}"


@dataclass(frozen=True, slots=True)
class ConversationSettings:
    model: str | None = None
    system_prompt: str | None = None


class Store(Protocol):
    async def history(self, key: ConversationKey) -> list[Turn]:
        """Turns of the current conversation, oldest first."""
        ...

    async def append(self, key: ConversationKey, turn: Turn) -> None: ...

    async def new_conversation(self, key: ConversationKey) -> None:
        """Start afresh; earlier turns are kept in storage but no longer sent to the model."""
        ...

    async def drop_last_answer(self, key: ConversationKey) -> Turn | None:
        """For /retry: remove the last assistant turn; return the user turn before it."""
        ...

    async def settings(self, key: ConversationKey) -> ConversationSettings: ...

    async def update_settings(self, key: ConversationKey, settings: ConversationSettings) -> None:
        ...

    async def move_chat(self, old_chat_id: int, new_chat_id: int) -> int:
        """A group became a supergroup: its conversations and settings follow it. Where the new
        chat has a current conversation already, the old one is archived; the new chat's settings
        win. Returns how many conversations moved (0 when done before: it may be told twice)."""
        ...

    async def migrations(self) -> dict[int, int]:
        """Every group → supergroup move `move_chat` was told of: old chat id → new chat id.
        Access follows an allowed group into its supergroup (`middlewares/access.py`); kept
        here, it still does after a restart."""
        ...

    async def first_time(self, update_id: int) -> bool:
        """Record an update id; False when it was seen before (no answer twice after restart)."""
        ...

    async def ping(self) -> bool: ...

    async def close(self) -> None: ...
