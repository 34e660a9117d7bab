"""Conversation storage behind one Protocol; `open_store` picks the backend from STORAGE_URL."""

from __future__ import annotations

from .base import ConversationKey, ConversationSettings, Store, Turn
from .memory import MemoryStore


async def open_store(url: str) -> Store:
    if url == "memory://":
        return MemoryStore()
    if url.startswith("sqlite:///"):
        from .sqlite import SqliteStore

        return await SqliteStore.open(url.removeprefix("sqlite:///"))
    raise ValueError(f"unsupported STORAGE_URL scheme: {url.split(':', 1)[0]}")


__all__ = ["ConversationKey", "ConversationSettings", "MemoryStore", "Store", "Turn", "open_store"]
