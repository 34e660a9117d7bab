"""Both stores must behave alike; the SQLite one must also remember across reopening its file."""

from __future__ import annotations

import asyncio
import sqlite3
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from bot.storage import (
    ConversationKey,
    ConversationSettings,
    MemoryStore,
    Store,
    Turn,
    open_store,
    schema,
)
from bot.storage import memory as memory_module
from bot.storage import sqlite as sqlite_module
from bot.storage.sqlite import SqliteStore

KEY = ConversationKey(chat_id=42)


def user(text: str, name: str | None = None) -> Turn:
    return Turn(role="user", content=text, name=name)


def assistant(text: str, tokens: int | None = None) -> Turn:
    return Turn(role="assistant", content=text, tokens=tokens)


@pytest.fixture(params=["memory", "sqlite"])
async def store(request: pytest.FixtureRequest, tmp_path: Path) -> AsyncIterator[Store]:
    s: Store = (
        MemoryStore()
        if request.param == "memory"
        else await SqliteStore.open(str(tmp_path / "bot.sqlite3"))
    )
    yield s
    await s.close()


# --- shared semantics ------------------------------------------------------------------------


async def test_history_is_oldest_first_and_keeps_every_field(store: Store) -> None:
    turns = [user("hi", name="ann"), assistant("hello", tokens=7), user("again")]
    for t in turns:
        await store.append(KEY, t)
    assert await store.history(KEY) == turns


async def test_unknown_key_has_empty_history_and_default_settings(store: Store) -> None:
    assert await store.history(KEY) == []
    assert await store.settings(KEY) == ConversationSettings()
    assert await store.drop_last_answer(KEY) is None


async def test_new_conversation_hides_earlier_turns(store: Store) -> None:
    await store.append(KEY, user("old"))
    await store.new_conversation(KEY)
    assert await store.history(KEY) == []
    await store.append(KEY, user("new"))
    assert await store.history(KEY) == [user("new")]
    await store.new_conversation(KEY)
    await store.new_conversation(KEY)  # twice in a row is harmless
    assert await store.history(KEY) == []


async def test_a_group_that_became_a_supergroup_keeps_its_conversations(store: Store) -> None:
    old, new = ConversationKey(-100, 0), ConversationKey(-1009, 0)
    topic_old, topic_new = ConversationKey(-100, 7), ConversationKey(-1009, 7)
    await store.append(old, user("archived"))
    await store.new_conversation(old)
    await store.append(old, user("current"))
    await store.append(topic_old, user("in a topic"))
    await store.update_settings(old, ConversationSettings(model="m1"))
    # Someone already asked in the new chat's topic: that conversation stays the current one.
    await store.append(topic_new, user("asked in the supergroup"))
    assert await store.move_chat(-100, -1009) == 2
    assert await store.history(new) == [user("current")]
    assert await store.history(topic_new) == [user("asked in the supergroup")]
    assert await store.settings(new) == ConversationSettings(model="m1")
    assert await store.history(old) == [] and await store.settings(old) == ConversationSettings()
    assert await store.move_chat(-100, -1009) == 0  # told again (both chats' service messages)
    assert await store.history(new) == [user("current")]
    assert await store.migrations() == {-100: -1009}  # recorded once, for access to follow


async def test_a_database_of_the_first_schema_is_upgraded_and_keeps_its_data(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "bot.sqlite3")
    monkeypatch.setattr(schema, "MIGRATIONS", schema.MIGRATIONS[:1])  # as shipped first
    s = await SqliteStore.open(path)
    await s.append(KEY, user("from before"))
    await s.close()
    monkeypatch.undo()
    s = await SqliteStore.open(path)
    try:
        assert await s.history(KEY) == [user("from before")]
        assert await s.migrations() == {}
        await s.move_chat(-100, -1009)
        assert await s.migrations() == {-100: -1009}
    finally:
        await s.close()


async def test_moving_a_chat_keeps_the_new_chats_own_settings(store: Store) -> None:
    await store.update_settings(ConversationKey(-100, 0), ConversationSettings(model="old"))
    await store.update_settings(ConversationKey(-1009, 0), ConversationSettings(model="new"))
    await store.move_chat(-100, -1009)
    assert await store.settings(ConversationKey(-1009, 0)) == ConversationSettings(model="new")


async def test_drop_last_answer_returns_the_question(store: Store) -> None:
    await store.append(KEY, user("q1"))
    await store.append(KEY, assistant("a1"))
    await store.append(KEY, user("q2"))
    await store.append(KEY, assistant("a2"))
    assert await store.drop_last_answer(KEY) == user("q2")
    assert await store.history(KEY) == [user("q1"), assistant("a1")]


async def test_drop_last_answer_without_answer_returns_pending_question(store: Store) -> None:
    await store.append(KEY, assistant("a0"))
    await store.append(KEY, user("q1"))
    assert await store.drop_last_answer(KEY) == user("q1")
    assert await store.history(KEY) == [assistant("a0")]


async def test_drop_last_answer_with_only_answers_drops_one(store: Store) -> None:
    await store.append(KEY, assistant("a0"))
    await store.append(KEY, assistant("a1"))
    assert await store.drop_last_answer(KEY) is None
    assert await store.history(KEY) == [assistant("a0")]


async def test_drop_last_answer_ignores_archived_turns(store: Store) -> None:
    await store.append(KEY, user("old"))
    await store.new_conversation(KEY)
    assert await store.drop_last_answer(KEY) is None
    await store.append(KEY, user("new"))
    assert await store.history(KEY) == [user("new")]


async def test_settings_survive_new_conversation(store: Store) -> None:
    await store.update_settings(KEY, ConversationSettings(model="m1", system_prompt="be brief"))
    await store.new_conversation(KEY)
    assert await store.settings(KEY) == ConversationSettings(model="m1", system_prompt="be brief")
    await store.update_settings(KEY, ConversationSettings(model="m2"))
    assert await store.settings(KEY) == ConversationSettings(model="m2")


async def test_keys_are_separate(store: Store) -> None:
    topic = ConversationKey(chat_id=42, thread_id=7)
    other = ConversationKey(chat_id=43)
    await store.append(KEY, user("general"))
    await store.append(topic, user("topic"))
    await store.update_settings(topic, ConversationSettings(model="t"))
    await store.new_conversation(other)
    assert await store.history(KEY) == [user("general")]
    assert await store.history(topic) == [user("topic")]
    assert await store.history(other) == []
    assert await store.settings(KEY) == ConversationSettings()
    await store.new_conversation(topic)
    assert await store.history(KEY) == [user("general")]


async def test_unicode_round_trips(store: Store) -> None:
    text = "Привет 👋🏽 世界 — \u200d👨‍👩‍👧 e\u0301 \x00 end"
    await store.append(KEY, user(text, name="Zoë 🦊"))
    await store.update_settings(KEY, ConversationSettings(system_prompt="ответь 🙂"))
    assert await store.history(KEY) == [user(text, name="Zoë 🦊")]
    assert (await store.settings(KEY)).system_prompt == "ответь 🙂"


async def test_first_time_dedupes(store: Store) -> None:
    assert await store.first_time(100) is True
    assert await store.first_time(100) is False
    assert await store.first_time(101) is True


async def test_seen_updates_keep_only_the_newest(
    store: Store, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(memory_module, "SEEN_UPDATES_KEPT", 3)
    monkeypatch.setattr(sqlite_module, "SEEN_UPDATES_KEPT", 3)
    for update_id in range(1, 6):
        assert await store.first_time(update_id) is True
    assert [await store.first_time(i) for i in (3, 4, 5)] == [False, False, False]
    assert await store.first_time(1) is True  # forgotten: outside the window


async def test_concurrent_writes_all_land(store: Store) -> None:
    keys = [ConversationKey(chat_id=1), ConversationKey(chat_id=1, thread_id=2)]
    await asyncio.gather(
        *(store.append(k, user(f"{k} {i}")) for i in range(20) for k in keys),
        *(store.first_time(i) for i in range(20)),
    )
    for k in keys:
        assert await store.history(k) == [user(f"{k} {i}") for i in range(20)]


async def test_ping(store: Store) -> None:
    assert await store.ping() is True


# --- SQLite only -----------------------------------------------------------------------------


async def test_data_survives_reopening(tmp_path: Path) -> None:
    path = str(tmp_path / "bot.sqlite3")
    topic = ConversationKey(chat_id=-100, thread_id=3)
    s = await SqliteStore.open(path)
    await s.append(KEY, user("archived"))
    await s.new_conversation(KEY)
    await s.append(KEY, user("q", name="ann"))
    await s.append(KEY, assistant("a 🎉", tokens=3))
    await s.append(topic, user("in topic"))
    await s.update_settings(KEY, ConversationSettings(model="m", system_prompt="p"))
    assert await s.first_time(555) is True
    await s.close()

    s = await SqliteStore.open(path)
    try:
        assert await s.history(KEY) == [user("q", name="ann"), assistant("a 🎉", tokens=3)]
        assert await s.history(topic) == [user("in topic")]
        assert await s.settings(KEY) == ConversationSettings(model="m", system_prompt="p")
        assert await s.first_time(555) is False
    finally:
        await s.close()

    # The archived conversation is kept in the file, just not shown.
    assert _query(path, "SELECT count(*) FROM conversations WHERE archived = 1") == 1
    assert _query(path, "SELECT content FROM turns ORDER BY id LIMIT 1") == "archived"


def _query(path: str, sql: str) -> object:
    """First column of the first row, read with plain sqlite3 (closed at once for -W error)."""
    raw = sqlite3.connect(path)
    try:
        row = raw.execute(sql).fetchone()
        return None if row is None else row[0]
    finally:
        raw.close()


async def test_schema_version_recorded_and_migrations_run_once(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = str(tmp_path / "bot.sqlite3")
    await (await SqliteStore.open(path)).close()
    assert _query(path, "PRAGMA user_version") == len(schema.MIGRATIONS) == 2
    assert _query(path, "PRAGMA journal_mode") == "wal"

    # The migrations use plain CREATE TABLE, so re-running one would fail: reopening skips them.
    s = await SqliteStore.open(path)
    await s.append(KEY, user("kept"))
    await s.close()

    # A later migration applies on top, exactly once, and existing data stays.
    later = ("CREATE TABLE extra (x INTEGER)", "INSERT INTO extra VALUES (1)")
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, later))
    for _ in range(2):
        s = await SqliteStore.open(path)
        assert await s.history(KEY) == [user("kept")]
        await s.close()
    assert _query(path, "PRAGMA user_version") == 3
    assert _query(path, "SELECT count(*) FROM extra") == 1


async def test_failed_migration_rolls_back(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = str(tmp_path / "bot.sqlite3")
    broken = ("CREATE TABLE half (x INTEGER)", "NOT SQL")
    monkeypatch.setattr(schema, "MIGRATIONS", (*schema.MIGRATIONS, broken))
    with pytest.raises(sqlite3.OperationalError):
        await SqliteStore.open(path)
    assert _query(path, "PRAGMA user_version") == 0
    assert _query(path, "SELECT name FROM sqlite_schema WHERE type = 'table'") is None


async def test_newer_schema_is_refused(tmp_path: Path) -> None:
    path = str(tmp_path / "bot.sqlite3")
    raw = sqlite3.connect(path)
    raw.execute("PRAGMA user_version = 99")
    raw.close()
    with pytest.raises(schema.SchemaTooNewError):
        await SqliteStore.open(path)


async def test_missing_parent_directories_are_created(tmp_path: Path) -> None:
    path = tmp_path / "a" / "b" / "bot.sqlite3"
    s = await SqliteStore.open(str(path))
    await s.append(KEY, user("x"))
    await s.close()
    assert path.is_file()


async def test_open_store_url(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    relative = await open_store("sqlite:///data/bot.sqlite3")
    await relative.close()
    assert (tmp_path / "data" / "bot.sqlite3").is_file()

    absolute = tmp_path / "abs" / "bot.sqlite3"
    s = await open_store(f"sqlite:///{absolute}")  # → sqlite:////tmp/...
    assert isinstance(s, SqliteStore)
    await s.close()
    assert absolute.is_file()


async def test_ping_after_close_is_false(tmp_path: Path) -> None:
    s = await SqliteStore.open(str(tmp_path / "bot.sqlite3"))
    await s.close()
    assert await s.ping() is False


async def test_writes_that_come_together_share_a_commit(tmp_path: Path) -> None:
    s = await SqliteStore.open(str(tmp_path / "bot.sqlite3"))
    keys = [ConversationKey(chat_id=n) for n in range(50)]
    before = s.commits
    await asyncio.gather(*(s.append(k, user(f"q{k.chat_id}")) for k in keys),
                         *(s.first_time(n) for n in range(50)))
    assert s.commits - before < 20  # 100 writes: one sync per batch, not one each
    assert [await s.history(k) for k in keys] == [[user(f"q{k.chat_id}")] for k in keys]
    await s.close()
    s = await SqliteStore.open(str(tmp_path / "bot.sqlite3"))  # and they are on disk
    assert await s.history(keys[-1]) == [user("q49")]
    assert await s.first_time(49) is False
    await s.close()


async def test_a_failing_write_is_undone_alone(tmp_path: Path) -> None:
    s = await SqliteStore.open(str(tmp_path / "bot.sqlite3"))
    key = ConversationKey(chat_id=7)

    def half_then_fail(db: sqlite3.Connection) -> None:
        db.execute("INSERT INTO conversations (chat_id, thread_id) VALUES (99, 0)")
        raise sqlite3.IntegrityError("refused")

    results = await asyncio.gather(
        s.append(key, user("before")),
        s._write(half_then_fail),
        s.append(key, user("after")),
        return_exceptions=True,
    )
    assert results[0] is None and results[2] is None
    assert isinstance(results[1], sqlite3.IntegrityError)
    assert await s.history(key) == [user("before"), user("after")]
    assert await s.history(ConversationKey(chat_id=99)) == []  # its first statement undone too
    await s.close()
