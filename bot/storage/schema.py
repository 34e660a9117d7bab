"""The SQLite schema as an ordered list of migrations; PRAGMA user_version records how many ran.

To change the schema, append a migration; never edit one that has shipped, since databases in the
field already ran it and will not run it again.
"""

from __future__ import annotations

import sqlite3

# Migration n (1-based) brings a database from user_version n-1 to n. Each is a tuple of single
# statements rather than a script: sqlite3's executescript() commits first, which would split the
# upgrade out of its transaction.
MIGRATIONS: tuple[tuple[str, ...], ...] = (
    (
        """CREATE TABLE conversations (
            id INTEGER PRIMARY KEY,
            chat_id INTEGER NOT NULL,
            thread_id INTEGER NOT NULL,
            started_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP,
            archived INTEGER NOT NULL DEFAULT 0
        )""",
        # At most one current conversation per key, so appends can't fork a second one.
        """CREATE UNIQUE INDEX conversations_current ON conversations (chat_id, thread_id)
            WHERE archived = 0""",
        """CREATE TABLE turns (
            id INTEGER PRIMARY KEY,
            conversation_id INTEGER NOT NULL REFERENCES conversations (id) ON DELETE CASCADE,
            role TEXT NOT NULL,
            content TEXT NOT NULL,
            name TEXT,
            tokens INTEGER,
            created_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
        )""",
        "CREATE INDEX turns_conversation ON turns (conversation_id, id)",
        """CREATE TABLE conversation_settings (
            chat_id INTEGER NOT NULL,
            thread_id INTEGER NOT NULL,
            model TEXT,
            system_prompt TEXT,
            PRIMARY KEY (chat_id, thread_id)
        )""",
        # INTEGER PRIMARY KEY is the rowid: pruning by update_id walks the table's own b-tree.
        """CREATE TABLE seen_updates (
            update_id INTEGER PRIMARY KEY,
            seen_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
        )""",
    ),
    (
        # Groups that became supergroups: access follows an allowed one after a restart too.
        """CREATE TABLE migrated_chats (
            old_chat_id INTEGER PRIMARY KEY,
            new_chat_id INTEGER NOT NULL,
            migrated_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP
        )""",
    ),
)


class SchemaTooNewError(RuntimeError):
    """The file was written by a newer bot; running old code on it could corrupt it."""


def schema_version(db: sqlite3.Connection) -> int:
    return int(db.execute("PRAGMA user_version").fetchone()[0])


def migrate(db: sqlite3.Connection) -> None:
    """Bring the database up to date in one transaction (all migrations apply or none do).

    The version is read after BEGIN IMMEDIATE takes the write lock, so two processes opening a new
    file at once don't both run migration 1.
    """
    db.execute("BEGIN IMMEDIATE")
    try:
        current = schema_version(db)
        if current > len(MIGRATIONS):
            raise SchemaTooNewError(f"schema v{current}, this code knows up to v{len(MIGRATIONS)}")
        for statements in MIGRATIONS[current:]:
            for statement in statements:
                db.execute(statement)
        # PRAGMA takes no bound parameters; the value is our own int.
        db.execute(f"PRAGMA user_version = {len(MIGRATIONS)}")
        db.execute("COMMIT")
    except BaseException:
        if db.in_transaction:
            db.execute("ROLLBACK")
        raise
