"""The default store: one SQLite file, so conversations and seen updates survive restarts."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import aiosqlite
import structlog

from .base import ConversationKey, ConversationSettings, Turn
from .memory import SEEN_UPDATES_KEPT
from .schema import migrate

log = structlog.get_logger(__name__)

BUSY_TIMEOUT_MS = 5_000

_CURRENT = "SELECT id FROM conversations WHERE chat_id = ? AND thread_id = ? AND archived = 0"


class SqliteStore:
    """One aiosqlite connection; every write is its own committed transaction.

    The lock serialises whole operations: statements from concurrent coroutines share the one
    connection, so without it a write could land inside another operation's transaction and be
    rolled back with it.
    """

    def __init__(self, db: aiosqlite.Connection) -> None:
        self._db = db
        self._lock = asyncio.Lock()

    @classmethod
    async def open(cls, path: str) -> SqliteStore:
        Path(path).parent.mkdir(parents=True, exist_ok=True)
        # isolation_level=None: no implicit BEGINs; transactions are explicit in _write().
        db = await aiosqlite.connect(path, isolation_level=None)
        try:
            # WAL lets /healthz read while an answer is being written; FULL syncs each commit
            # so an acknowledged turn survives a power cut, not only a process crash.
            await db.execute("PRAGMA journal_mode = WAL")
            await db.execute("PRAGMA synchronous = FULL")
            await db.execute("PRAGMA foreign_keys = ON")
            await db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            await migrate(db)
        except BaseException:
            await db.close()
            raise
        return cls(db)

    @asynccontextmanager
    async def _write(self) -> AsyncIterator[aiosqlite.Connection]:
        async with self._lock:
            # IMMEDIATE takes the write lock up front, so busy_timeout applies here rather than
            # failing mid-operation when another process holds the file.
            await self._db.execute("BEGIN IMMEDIATE")
            try:
                yield self._db
                await self._db.commit()
            except BaseException:
                await self._db.rollback()
                raise

    async def history(self, key: ConversationKey) -> list[Turn]:
        async with self._lock:
            rows = await self._db.execute_fetchall(
                "SELECT t.role, t.content, t.name, t.tokens FROM turns t"
                " JOIN conversations c ON c.id = t.conversation_id"
                " WHERE c.chat_id = ? AND c.thread_id = ? AND c.archived = 0 ORDER BY t.id",
                (key.chat_id, key.thread_id),
            )
        return [Turn(role=r[0], content=r[1], name=r[2], tokens=r[3]) for r in rows]

    async def append(self, key: ConversationKey, turn: Turn) -> None:
        async with self._write() as db:
            # The partial unique index makes this a no-op when a current conversation exists.
            await db.execute(
                "INSERT OR IGNORE INTO conversations (chat_id, thread_id) VALUES (?, ?)",
                (key.chat_id, key.thread_id),
            )
            await db.execute(
                "INSERT INTO turns (conversation_id, role, content, name, tokens)"
                f" SELECT id, ?, ?, ?, ? FROM ({_CURRENT})",
                (turn.role, turn.content, turn.name, turn.tokens, key.chat_id, key.thread_id),
            )

    async def new_conversation(self, key: ConversationKey) -> None:
        async with self._write() as db:
            await db.execute(
                "UPDATE conversations SET archived = 1"
                " WHERE chat_id = ? AND thread_id = ? AND archived = 0",
                (key.chat_id, key.thread_id),
            )

    async def drop_last_answer(self, key: ConversationKey) -> Turn | None:
        async with self._write() as db:
            rows = list(
                await db.execute_fetchall(
                    "SELECT id, role, content, name, tokens FROM turns"
                    f" WHERE conversation_id = ({_CURRENT}) ORDER BY id DESC LIMIT 2",
                    (key.chat_id, key.thread_id),
                )
            )
            # Same rule as MemoryStore: drop a trailing answer, then hand back the question.
            if rows and rows[0][1] == "assistant":
                await db.execute("DELETE FROM turns WHERE id = ?", (rows.pop(0)[0],))
            if rows and rows[0][1] == "user":
                turn_id, role, content, name, tokens = rows[0]
                await db.execute("DELETE FROM turns WHERE id = ?", (turn_id,))
                return Turn(role=role, content=content, name=name, tokens=tokens)
            return None

    async def settings(self, key: ConversationKey) -> ConversationSettings:
        async with self._lock:
            rows = list(
                await self._db.execute_fetchall(
                    "SELECT model, system_prompt FROM conversation_settings"
                    " WHERE chat_id = ? AND thread_id = ?",
                    (key.chat_id, key.thread_id),
                )
            )
        if not rows:
            return ConversationSettings()
        return ConversationSettings(model=rows[0][0], system_prompt=rows[0][1])

    async def update_settings(self, key: ConversationKey, settings: ConversationSettings) -> None:
        async with self._write() as db:
            await db.execute(
                "INSERT INTO conversation_settings (chat_id, thread_id, model, system_prompt)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (chat_id, thread_id) DO UPDATE"
                " SET model = excluded.model, system_prompt = excluded.system_prompt",
                (key.chat_id, key.thread_id, settings.model, settings.system_prompt),
            )

    async def first_time(self, update_id: int) -> bool:
        async with self._write() as db:
            async with db.execute(
                "INSERT OR IGNORE INTO seen_updates (update_id) VALUES (?)", (update_id,)
            ) as cursor:
                fresh = cursor.rowcount == 1
            if fresh:
                # Telegram's update ids increase, so the smallest are the oldest; keeping a
                # window bounds the table while still catching redeliveries after a restart.
                await db.execute(
                    "DELETE FROM seen_updates WHERE update_id <= (SELECT update_id"
                    " FROM seen_updates ORDER BY update_id DESC LIMIT 1 OFFSET ?)",
                    (SEEN_UPDATES_KEPT,),
                )
            return fresh

    async def ping(self) -> bool:
        try:
            async with self._lock:
                await self._db.execute_fetchall("SELECT 1")
        except (sqlite3.Error, ValueError) as exc:  # ValueError: aiosqlite after close()
            log.warning("storage.ping_failed", backend="sqlite", error=repr(exc))
            return False
        return True

    async def close(self) -> None:
        await self._db.close()
