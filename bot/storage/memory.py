"""In-process store for tests and `STORAGE_URL=memory://` (forgets everything on restart)."""

from __future__ import annotations

from collections import OrderedDict

from .base import ConversationKey, ConversationSettings, Turn

SEEN_UPDATES_KEPT = 10_000


class MemoryStore:
    def __init__(self) -> None:
        self._turns: dict[ConversationKey, list[Turn]] = {}
        self._archived: list[tuple[ConversationKey, list[Turn]]] = []
        self._settings: dict[ConversationKey, ConversationSettings] = {}
        self._seen: OrderedDict[int, None] = OrderedDict()
        self._migrations: dict[int, int] = {}

    async def history(self, key: ConversationKey) -> list[Turn]:
        return list(self._turns.get(key, []))

    async def append(self, key: ConversationKey, turn: Turn) -> None:
        self._turns.setdefault(key, []).append(turn)

    async def new_conversation(self, key: ConversationKey) -> None:
        old = self._turns.pop(key, [])
        if old:
            self._archived.append((key, old))

    async def drop_last_answer(self, key: ConversationKey) -> Turn | None:
        turns = self._turns.get(key, [])
        if turns and turns[-1].role == "assistant":
            turns.pop()
        if turns and turns[-1].role == "user":
            return turns.pop()
        return None

    async def settings(self, key: ConversationKey) -> ConversationSettings:
        return self._settings.get(key, ConversationSettings())

    async def update_settings(self, key: ConversationKey, settings: ConversationSettings) -> None:
        self._settings[key] = settings

    async def move_chat(self, old_chat_id: int, new_chat_id: int) -> int:
        self._migrations[old_chat_id] = new_chat_id
        moved = 0
        for key in [k for k in self._turns if k.chat_id == old_chat_id]:
            turns = self._turns.pop(key)
            target = ConversationKey(new_chat_id, key.thread_id)
            if self._turns.get(target):
                self._archived.append((target, turns))
            else:
                self._turns[target] = turns
            moved += 1
        self._archived = [
            (ConversationKey(new_chat_id, k.thread_id) if k.chat_id == old_chat_id else k, turns)
            for k, turns in self._archived
        ]
        for key in [k for k in self._settings if k.chat_id == old_chat_id]:
            self._settings.setdefault(ConversationKey(new_chat_id, key.thread_id),
                                      self._settings.pop(key))
        return moved

    async def migrations(self) -> dict[int, int]:
        return dict(self._migrations)

    async def first_time(self, update_id: int) -> bool:
        if update_id in self._seen:
            return False
        self._seen[update_id] = None
        while len(self._seen) > SEEN_UPDATES_KEPT:
            self._seen.popitem(last=False)
        return True

    async def ping(self) -> bool:
        return True

    async def close(self) -> None:
        return None
