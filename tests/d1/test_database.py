"""The D1 binding: statements, batches (all or nothing), limits, migrations."""

from __future__ import annotations

import asyncio
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
