"""Numbered ``.sql`` migrations, applied at start-up and recorded, like ``wrangler d1 migrations``.

Files are named ``NNNN_description.sql`` and applied in order, each in its own transaction
together with its row in ``d1_migrations``; a second start applies nothing.
"""

from __future__ import annotations

import logging
import re
import sqlite3
from pathlib import Path

from d1.database import D1Database

log = logging.getLogger(__name__)

MIGRATIONS_DIR = Path(__file__).parent / "migrations"
_NAME = re.compile(r"^(\d{4})_[a-z0-9_]+\.sql$")


def migration_files(directory: Path = MIGRATIONS_DIR) -> list[Path]:
    files = sorted(p for p in directory.iterdir() if _NAME.match(p.name))
    numbers = [p.name[:4] for p in files]
    if len(numbers) != len(set(numbers)):
        raise RuntimeError(f"two migrations share a number in {directory}: {numbers}")
    return files


async def apply_migrations(db: D1Database, directory: Path = MIGRATIONS_DIR) -> list[str]:
    """Apply every migration not yet recorded; return the names applied now."""
    await db.exec(
        "CREATE TABLE IF NOT EXISTS d1_migrations ("
        " id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL,"
        " applied_at TEXT NOT NULL DEFAULT CURRENT_TIMESTAMP)"
    )
    done = {r["name"] for r in (await db.prepare("SELECT name FROM d1_migrations").all()).results}
    applied: list[str] = []
    for path in migration_files(directory):
        if path.name in done:
            continue
        sql = path.read_text()

        def apply(conn: sqlite3.Connection, sql: str = sql, name: str = path.name) -> None:
            # executescript would commit the open transaction; run statement by statement.
            for statement in _split_statements(sql):
                conn.execute(statement)
            conn.execute("INSERT INTO d1_migrations (name) VALUES (?)", (name,))

        await db.run_in_transaction(apply)
        log.info("applied migration %s", path.name)
        applied.append(path.name)
    return applied


def _split_statements(sql: str) -> list[str]:
    """Split a migration into complete statements (sqlite3.complete_statement handles
    semicolons inside strings and trigger bodies)."""
    statements: list[str] = []
    buffer = ""
    for line in sql.splitlines(keepends=True):
        if not buffer and line.strip().startswith("--"):
            continue
        buffer += line
        if sqlite3.complete_statement(buffer):
            if buffer.strip():
                statements.append(buffer.strip())
            buffer = ""
    if buffer.strip() and not all(
        l.strip().startswith("--") or not l.strip() for l in buffer.splitlines()
    ):
        raise RuntimeError(f"incomplete SQL statement at end of migration: {buffer[:200]!r}")
    return statements
