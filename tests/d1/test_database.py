"""The D1 binding: statements, batches (all or nothing), limits, migrations."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import pytest

from d1 import D1Database, D1Error, apply_migrations
from d1.migrations import migration_files


@pytest.fixture
async def db(tmp_path: Path):
    database = D1Database(tmp_path / "test.sqlite")
    await database.exec("CREATE TABLE t (id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL)")
    yield database
    database.close()


async def test_prepare_bind_first_all_run_raw(db: D1Database) -> None:
    result = await db.prepare("INSERT INTO t (name) VALUES (?)").bind("alice").run()
    assert result.success and result.meta["changes"] == 1 and result.meta["last_row_id"] == 1
    await db.prepare("INSERT INTO t (name) VALUES (?)").bind("bob").run()
    assert await db.prepare("SELECT * FROM t WHERE name = ?").bind("bob").first() == {"id": 2, "name": "bob"}
    assert await db.prepare("SELECT name FROM t WHERE id = ?").bind(1).first("name") == "alice"
    assert await db.prepare("SELECT * FROM t WHERE id = 99").first() is None
    rows = (await db.prepare("SELECT * FROM t ORDER BY id").all()).results
    assert [r["name"] for r in rows] == ["alice", "bob"]
    assert await db.prepare("SELECT id, name FROM t ORDER BY id").raw() == [[1, "alice"], [2, "bob"]]
    assert (await db.prepare("SELECT id FROM t ORDER BY id").raw(column_names=True))[0] == ["id"]


async def test_failing_statement_in_batch_leaves_nothing_written(db: D1Database) -> None:
    insert = db.prepare("INSERT INTO t (name) VALUES (?)")
    with pytest.raises(D1Error):
        await db.batch([insert.bind("one"), insert.bind("two"), insert.bind("one")])
    assert (await db.prepare("SELECT count(*) AS n FROM t").first("n")) == 0
    results = await db.batch([insert.bind("one"), insert.bind("two")])
    assert [r.meta["changes"] for r in results] == [1, 1]
    assert (await db.prepare("SELECT count(*) AS n FROM t").first("n")) == 2


async def test_concurrent_batches_never_interleave(db: D1Database) -> None:
    await db.exec("CREATE TABLE counter (id INTEGER PRIMARY KEY, n INTEGER NOT NULL)")
    await db.prepare("INSERT INTO counter (id, n) VALUES (1, 0)").run()
    bump = db.prepare("UPDATE counter SET n = n + 1 WHERE id = 1")
    log_row = db.prepare("INSERT INTO t (name) SELECT 'n' || n FROM counter WHERE id = 1")
    await asyncio.gather(*(db.batch([bump, log_row]) for _ in range(200)))
    assert await db.prepare("SELECT n FROM counter").first("n") == 200
    # Each batch saw its own increment: the logged values are exactly 1..200, no duplicates.
    names = {r["name"] for r in (await db.prepare("SELECT name FROM t").all()).results}
    assert names == {f"n{i}" for i in range(1, 201)}


async def test_platform_limits_are_enforced(db: D1Database) -> None:
    with pytest.raises(D1Error, match="bound parameters"):
        db.prepare("SELECT " + ",".join("?" * 101)).bind(*range(101))
    with pytest.raises(D1Error, match="bound value larger"):
        db.prepare("INSERT INTO t (name) VALUES (?)").bind("x" * (2 * 1024 * 1024 + 1))
    # The limit is on bytes: 700,000 three-byte characters are 2.1 MB in UTF-8.
    with pytest.raises(D1Error, match="bound value larger"):
        db.prepare("INSERT INTO t (name) VALUES (?)").bind("€" * 700_000)
    db.prepare("INSERT INTO t (name) VALUES (?)").bind("€" * 699_000)  # 2,097,000 bytes: allowed
    with pytest.raises(D1Error, match="bound value larger"):
        db.prepare("INSERT INTO t (name) VALUES (?)").bind(b"x" * (2 * 1024 * 1024 + 1))
    with pytest.raises(D1Error, match="SQL statement longer"):
        db.prepare("SELECT '" + "é" * 60_000 + "'").bind()


async def test_sql_errors_are_d1_errors(db: D1Database) -> None:
    with pytest.raises(D1Error):
        await db.prepare("SELECT * FROM missing_table").all()


async def test_wal_and_foreign_keys(db: D1Database) -> None:
    assert await db.prepare("PRAGMA journal_mode").first("journal_mode") == "wal"
    assert await db.prepare("PRAGMA foreign_keys").first("foreign_keys") == 1


async def test_migrations_are_idempotent(tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_first.sql").write_text(
        "-- a comment\nCREATE TABLE a (x TEXT DEFAULT 'semi;colon');\nCREATE INDEX a_x ON a (x);\n"
    )
    (migrations / "0002_second.sql").write_text("ALTER TABLE a ADD COLUMN y INTEGER;\n")
    db = D1Database(tmp_path / "m.sqlite")
    try:
        assert await apply_migrations(db, migrations) == ["0001_first.sql", "0002_second.sql"]
        assert await apply_migrations(db, migrations) == []
        await db.prepare("INSERT INTO a (y) VALUES (1)").run()
        assert await db.prepare("SELECT x, y FROM a").first() == {"x": "semi;colon", "y": 1}
    finally:
        db.close()


async def test_failed_migration_is_not_recorded(tmp_path: Path) -> None:
    migrations = tmp_path / "migrations"
    migrations.mkdir()
    (migrations / "0001_bad.sql").write_text("CREATE TABLE b (x);\nTHIS IS NOT SQL;\n")
    db = D1Database(tmp_path / "m.sqlite")
    try:
        with pytest.raises(Exception):
            await apply_migrations(db, migrations)
        assert await db.prepare("SELECT count(*) AS n FROM d1_migrations").first("n") == 0
        assert await db.prepare("SELECT name FROM sqlite_master WHERE name = 'b'").first() is None
    finally:
        db.close()


def test_project_migrations_are_numbered_uniquely() -> None:
    names = [p.name for p in migration_files()]
    assert names and names == sorted(names)


async def test_project_migrations_apply_twice(tmp_path: Path) -> None:
    db = D1Database(tmp_path / "p.sqlite")
    try:
        first = await apply_migrations(db)
        assert first == [p.name for p in migration_files()]
        assert await apply_migrations(db) == []
    finally:
        db.close()


# --- group commit ---------------------------------------------------------------------------


async def _hold_writer(db: D1Database, trace: list[str]) -> tuple[asyncio.Task, threading.Event]:
    """Occupy the writer thread (tracing its statements into ``trace``) until the returned
    event is set, so that batches queue up behind it and run as one group."""
    entered, release = threading.Event(), threading.Event()

    def hold(conn: sqlite3.Connection) -> None:
        conn.set_trace_callback(trace.append)
        entered.set()
        release.wait(10)

    task = asyncio.create_task(db.run_in_transaction(hold))
    while not entered.is_set():
        await asyncio.sleep(0.001)
    return task, release


async def _queue(coros: list) -> list[asyncio.Task]:
    tasks = [asyncio.ensure_future(c) for c in coros]
    for _ in range(3):
        await asyncio.sleep(0)  # each task has put its job on the writer's queue
    return tasks


async def test_group_commit_a_failing_batch_fails_alone(db: D1Database) -> None:
    insert = db.prepare("INSERT INTO t (name) VALUES (?)")
    await insert.bind("taken").run()
    trace: list[str] = []
    holder, release = await _hold_writer(db, trace)
    tasks = await _queue([
        db.batch([insert.bind("a1"), insert.bind("a2")]),
        db.batch([insert.bind("b1"), insert.bind("taken")]),  # fails on its second statement
        db.batch([insert.bind("c1")]),
    ])
    release.set()
    await holder
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert [r.meta["changes"] for r in results[0]] == [1, 1]
    assert isinstance(results[1], D1Error)
    assert [r.meta["changes"] for r in results[2]] == [1]
    names = {r["name"] for r in (await db.prepare("SELECT name FROM t").all()).results}
    assert names == {"taken", "a1", "a2", "c1"}  # b1 rolled back with its batch
    # The three batches shared one transaction: one BEGIN and one COMMIT after the holder's.
    statements = [s.split()[0] for s in trace if s.split()[0] in ("BEGIN", "COMMIT", "ROLLBACK")]
    assert statements == ["COMMIT", "BEGIN", "ROLLBACK", "COMMIT"]
    assert sum(1 for s in trace if s.startswith("SAVEPOINT")) == 3


async def test_group_commit_acknowledges_only_after_commit(db: D1Database, tmp_path: Path) -> None:
    insert = db.prepare("INSERT INTO t (name) VALUES (?)")
    trace: list[str] = []
    holder, release = await _hold_writer(db, trace)

    async def write_and_check(name: str) -> None:
        await insert.bind(name).run()
        # Acknowledged: the COMMIT has run after this batch's INSERT, and another
        # connection (another process, after a crash) already sees the row.
        inserted = max(i for i, s in enumerate(trace) if f"'{name}'" in s)
        assert any(s == "COMMIT" for s in trace[inserted:])
        other = sqlite3.connect(tmp_path / "test.sqlite")
        try:
            assert other.execute("SELECT count(*) FROM t WHERE name = ?", (name,)).fetchone() == (1,)
        finally:
            other.close()

    tasks = await _queue([write_and_check(f"n{i}") for i in range(10)])
    release.set()
    await holder
    await asyncio.gather(*tasks)
    assert sum(1 for s in trace if s.startswith("BEGIN")) == 1  # the ten shared one transaction


async def test_group_commit_reruns_the_others_when_the_transaction_is_lost(db: D1Database) -> None:
    insert = db.prepare("INSERT INTO t (name) VALUES (?)")
    trace: list[str] = []
    holder, release = await _hold_writer(db, trace)

    def lose_transaction(conn: sqlite3.Connection) -> None:
        conn.execute("INSERT INTO t (name) VALUES ('lost')")
        conn.execute("ROLLBACK")  # as SQLite does on a full disk or an I/O error
        raise RuntimeError("transaction lost")

    tasks = await _queue([
        db.batch([insert.bind("before")]),
        db.run_in_transaction(lose_transaction),
        db.batch([insert.bind("after")]),
    ])
    release.set()
    await holder
    results = await asyncio.gather(*tasks, return_exceptions=True)
    assert isinstance(results[1], RuntimeError)
    assert not isinstance(results[0], BaseException) and not isinstance(results[2], BaseException)
    names = {r["name"] for r in (await db.prepare("SELECT name FROM t").all()).results}
    assert names == {"before", "after"}


async def test_writes_after_a_failed_group_still_work(db: D1Database) -> None:
    def boom(conn: sqlite3.Connection) -> None:
        raise ValueError("not SQLite's fault")

    with pytest.raises(ValueError):
        await db.run_in_transaction(boom)
    await db.prepare("INSERT INTO t (name) VALUES ('fine')").run()
    assert await db.prepare("SELECT name FROM t").first("name") == "fine"


# --- several reads in one hop ---------------------------------------------------------------


async def test_read_many_answers_each_read_in_order(db: D1Database) -> None:
    await db.batch([db.prepare("INSERT INTO t (name) VALUES (?)").bind(n) for n in ("x", "y")])
    first, count, empty = await db.read_many([
        db.prepare("SELECT name FROM t WHERE id = ?").bind(1),
        db.prepare("SELECT count(*) AS n FROM t"),
        db.prepare("SELECT * FROM t WHERE name = 'nobody'"),
    ])
    assert first.results == [{"name": "x"}]
    assert count.results == [{"n": 2}]
    assert empty.results == []
    assert await db.read_many([]) == []


async def test_read_many_refuses_writes_and_reports_sql_errors(db: D1Database) -> None:
    with pytest.raises(D1Error, match="reads only"):
        await db.read_many([db.prepare("SELECT 1"), db.prepare("DELETE FROM t")])
    with pytest.raises(D1Error):
        await db.read_many([db.prepare("SELECT * FROM missing_table")])
    # The reader connection is usable afterwards (its read transaction was ended).
    assert (await db.read_many([db.prepare("SELECT 1 AS one")]))[0].results == [{"one": 1}]
