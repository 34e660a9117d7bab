"""The default store: one SQLite file, so conversations and seen updates survive restarts."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import structlog

from .base import ConversationKey, ConversationSettings, Turn
from .memory import SEEN_UPDATES_KEPT
from .schema import migrate

log = structlog.get_logger(__name__)
T = TypeVar("T")

BUSY_TIMEOUT_MS = 5_000

_CURRENT = "SELECT id FROM conversations WHERE chat_id = ? AND thread_id = ? AND archived = 0"


class StoreClosed(sqlite3.ProgrammingError):
    """The store was closed; nothing more is read or written."""


class SqliteStore:
    """One SQLite connection, used from one worker thread of its own.

    Each operation is one synchronous function run in that thread: one hop from the event loop
    per operation, however many statements it has (with a hop per statement, an answer's start
    took ten; 1,000 answers starting at once spent 1.1 s of CPU on them). The thread runs one
    thing at a time, so a write never lands inside another operation's transaction; writes that
    come together are committed together (`_write`). An operation whose caller was cancelled
    still runs to its end: no transaction is left half done.
    """

    def __init__(self, db: sqlite3.Connection, thread: ThreadPoolExecutor) -> None:
        self._db = db
        self._thread = thread
        self._closed = False
        self._pending: list[tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]] = []
        self._pending_lock = threading.Lock()  # the loop adds writes, the store's thread takes them
        self.commits = 0  # transactions committed: fewer than writes when they come together

    @classmethod
    async def open(cls, path: str) -> SqliteStore:
        thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="sqlite")
        try:
            db = await asyncio.get_running_loop().run_in_executor(thread, _connect, path)
        except BaseException:
            thread.shutdown(wait=False)
            raise
        return cls(db, thread)

    async def _run(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        if self._closed:
            raise StoreClosed("the store is closed")
        return await asyncio.get_running_loop().run_in_executor(self._thread, operation, self._db)

    async def _write(self, operation: Callable[[sqlite3.Connection], T]) -> T:
        """Run `operation` in a committed transaction; it returns once the commit is synced.

        Writes that arrive while the thread is busy share the next transaction (group commit):
        one sync for all of them instead of one each, which is what a burst of answers starting
        at once costs otherwise. Each runs inside a savepoint of its own, so one that fails is
        undone alone and its error goes to its own caller.
        """
        if self._closed:
            raise StoreClosed("the store is closed")
        loop = asyncio.get_running_loop()
        done: asyncio.Future[T] = loop.create_future()
        with self._pending_lock:
            self._pending.append((operation, done))
            first = len(self._pending) == 1
        if first:  # the first write of a batch schedules its commit
            loop.run_in_executor(self._thread, self._commit_pending, loop)
        # A caller cancelled meanwhile leaves its write in the batch: it is committed anyway.
        return await done

    def _commit_pending(self, loop: asyncio.AbstractEventLoop) -> None:
        # Runs in the store's thread. Writes added from now on start the next batch (and
        # schedule its commit, which this thread runs after this one).
        with self._pending_lock:
            batch, self._pending = self._pending, []
        db = self._db
        outcomes: list[tuple[bool, Any]] = []
        try:
            # IMMEDIATE takes the write lock up front, so busy_timeout applies here rather
            # than failing mid-operation when another process holds the file.
            db.execute("BEGIN IMMEDIATE")
            try:
                for operation, _ in batch:
                    db.execute("SAVEPOINT one")
                    try:
                        outcomes.append((True, operation(db)))
                    except Exception as exc:
                        db.execute("ROLLBACK TO one")
                        outcomes.append((False, exc))
                    db.execute("RELEASE one")
                db.execute("COMMIT")
                self.commits += 1
            except BaseException:
                if db.in_transaction:  # SQLite may have rolled back already (disk full)
                    db.execute("ROLLBACK")
                raise
        except Exception as exc:  # nothing of the batch was committed
            outcomes = [(False, exc)] * len(batch)
        for (_, done), (ok, value) in zip(batch, outcomes, strict=True):
            loop.call_soon_threadsafe(_settle, done, ok, value)

    async def history(self, key: ConversationKey) -> list[Turn]:
        def read(db: sqlite3.Connection) -> list[Turn]:
            rows = db.execute(
                "SELECT t.role, t.content, t.name, t.tokens FROM turns t"
                " JOIN conversations c ON c.id = t.conversation_id"
                " WHERE c.chat_id = ? AND c.thread_id = ? AND c.archived = 0 ORDER BY t.id",
                (key.chat_id, key.thread_id),
            ).fetchall()
            return [Turn(role=r[0], content=r[1], name=r[2], tokens=r[3]) for r in rows]

        return await self._run(read)

    async def append(self, key: ConversationKey, turn: Turn) -> None:
        def write(db: sqlite3.Connection) -> None:
            # The partial unique index makes this a no-op when a current conversation exists.
            db.execute(
                "INSERT OR IGNORE INTO conversations (chat_id, thread_id) VALUES (?, ?)",
                (key.chat_id, key.thread_id),
            )
            db.execute(
                "INSERT INTO turns (conversation_id, role, content, name, tokens)"
                f" SELECT id, ?, ?, ?, ? FROM ({_CURRENT})",
                (turn.role, turn.content, turn.name, turn.tokens, key.chat_id, key.thread_id),
            )

        await self._write(write)

    async def new_conversation(self, key: ConversationKey) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "UPDATE conversations SET archived = 1"
                " WHERE chat_id = ? AND thread_id = ? AND archived = 0",
                (key.chat_id, key.thread_id),
            )

        await self._write(write)

    async def drop_last_answer(self, key: ConversationKey) -> Turn | None:
        def write(db: sqlite3.Connection) -> Turn | None:
            rows = db.execute(
                "SELECT id, role, content, name, tokens FROM turns"
                f" WHERE conversation_id = ({_CURRENT}) ORDER BY id DESC LIMIT 2",
                (key.chat_id, key.thread_id),
            ).fetchall()
            # Same rule as MemoryStore: drop a trailing answer, then hand back the question.
            if rows and rows[0][1] == "assistant":
                db.execute("DELETE FROM turns WHERE id = ?", (rows.pop(0)[0],))
            if rows and rows[0][1] == "user":
                turn_id, role, content, name, tokens = rows[0]
                db.execute("DELETE FROM turns WHERE id = ?", (turn_id,))
                return Turn(role=role, content=content, name=name, tokens=tokens)
            return None

        return await self._write(write)

    async def settings(self, key: ConversationKey) -> ConversationSettings:
        def read(db: sqlite3.Connection) -> ConversationSettings:
            row = db.execute(
                "SELECT model, system_prompt FROM conversation_settings"
                " WHERE chat_id = ? AND thread_id = ?",
                (key.chat_id, key.thread_id),
            ).fetchone()
            if row is None:
                return ConversationSettings()
            return ConversationSettings(model=row[0], system_prompt=row[1])

        return await self._run(read)

    async def update_settings(self, key: ConversationKey, settings: ConversationSettings) -> None:
        def write(db: sqlite3.Connection) -> None:
            db.execute(
                "INSERT INTO conversation_settings (chat_id, thread_id, model, system_prompt)"
                " VALUES (?, ?, ?, ?) ON CONFLICT (chat_id, thread_id) DO UPDATE"
                " SET model = excluded.model, system_prompt = excluded.system_prompt",
                (key.chat_id, key.thread_id, settings.model, settings.system_prompt),
            )

        await self._write(write)

    async def move_chat(self, old_chat_id: int, new_chat_id: int) -> int:
        def write(db: sqlite3.Connection) -> int:
            moved = db.execute(
                "SELECT COUNT(*) FROM conversations WHERE chat_id = ? AND archived = 0",
                (old_chat_id,),
            ).fetchone()[0]
            # A current conversation of the new chat stays current; the old one's is archived.
            db.execute(
                "UPDATE conversations SET archived = 1 WHERE chat_id = ? AND archived = 0"
                " AND thread_id IN (SELECT thread_id FROM conversations"
                " WHERE chat_id = ? AND archived = 0)",
                (old_chat_id, new_chat_id),
            )
            db.execute("UPDATE conversations SET chat_id = ? WHERE chat_id = ?",
                       (new_chat_id, old_chat_id))
            db.execute("UPDATE OR IGNORE conversation_settings SET chat_id = ? WHERE chat_id = ?",
                       (new_chat_id, old_chat_id))
            db.execute("DELETE FROM conversation_settings WHERE chat_id = ?", (old_chat_id,))
            db.execute("INSERT OR REPLACE INTO migrated_chats (old_chat_id, new_chat_id)"
                       " VALUES (?, ?)", (old_chat_id, new_chat_id))
            return int(moved)

        return await self._write(write)

    async def migrations(self) -> dict[int, int]:
        def read(db: sqlite3.Connection) -> dict[int, int]:
            rows = db.execute("SELECT old_chat_id, new_chat_id FROM migrated_chats").fetchall()
            return {int(old): int(new) for old, new in rows}

        return await self._run(read)

    async def first_time(self, update_id: int) -> bool:
        def write(db: sqlite3.Connection) -> bool:
            fresh = db.execute(
                "INSERT OR IGNORE INTO seen_updates (update_id) VALUES (?)", (update_id,)
            ).rowcount == 1
            if fresh:
                # Telegram's update ids increase, so the smallest are the oldest; keeping a
                # window bounds the table while still catching redeliveries after a restart.
                db.execute(
                    "DELETE FROM seen_updates WHERE update_id <= (SELECT update_id"
                    " FROM seen_updates ORDER BY update_id DESC LIMIT 1 OFFSET ?)",
                    (SEEN_UPDATES_KEPT,),
                )
            return fresh

        return await self._write(write)

    async def ping(self) -> bool:
        try:
            await self._run(lambda db: db.execute("SELECT 1").fetchall())
        except sqlite3.Error as exc:
            log.warning("storage.ping_failed", backend="sqlite", error=repr(exc))
            return False
        return True

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        try:
            await asyncio.get_running_loop().run_in_executor(self._thread, self._db.close)
        finally:
            self._thread.shutdown(wait=False)


def _settle(done: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if done.done():  # the loop is closing; nobody waits any more
        return
    if ok:
        done.set_result(value)
    else:
        done.set_exception(value)


def _connect(path: str) -> sqlite3.Connection:
    """Open (creating it if needed) and migrate the database: runs in the store's thread."""
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    # isolation_level=None: no implicit BEGINs; transactions are explicit in _write(). The
    # connection stays tied to this thread (sqlite3's check): any use from elsewhere would fail.
    db = sqlite3.connect(path, isolation_level=None)
    try:
        # WAL lets /healthz read while an answer is being written; FULL syncs each commit
        # so an acknowledged turn survives a power cut, not only a process crash.
        db.execute("PRAGMA journal_mode = WAL")
        db.execute("PRAGMA synchronous = FULL")
        db.execute("PRAGMA foreign_keys = ON")
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        migrate(db)
    except BaseException:
        db.close()
        raise
    return db
