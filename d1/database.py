"""A database binding shaped like Cloudflare D1, backed by SQLite.

The API mirrors what Workers code calls on ``env.DB``::

    row = await env.DB.prepare("SELECT * FROM users WHERE name = ?").bind(name).first()
    result = await env.DB.prepare("SELECT ...").all()        # D1Result(results=[{...}], ...)
    await env.DB.batch([stmt1, stmt2])                        # all or nothing
    await env.DB.exec("CREATE TABLE ...; CREATE INDEX ...")  # migrations

Local guarantees:
- SQLite in WAL mode, ``synchronous=NORMAL`` (a committed transaction survives a killed process),
  foreign keys on.
- Async callers never block the event loop: statements run on worker threads, each with its
  own connection. All writes go through one writer thread, so two batches never interleave;
  reads run on a small reader pool and see every write committed before they started.
- The platform's limits are enforced so code stays portable: at most 100 bound parameters per
  statement, at most 2 MB per bound value, at most 100 KB of SQL per statement.
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Sequence, TypeVar

log = logging.getLogger(__name__)

MAX_BOUND_PARAMETERS = 100
MAX_VALUE_BYTES = 2 * 1024 * 1024
MAX_SQL_BYTES = 100 * 1024

_READ_PREFIXES = ("select", "with", "explain")

T = TypeVar("T")


class D1Error(Exception):
    """A statement or batch failed; nothing of a failed batch was written."""


@dataclass
class D1Result:
    """What ``all()``/``run()`` return, like D1's ``{results, success, meta}``."""

    results: list[dict[str, Any]] = field(default_factory=list)
    success: bool = True
    meta: dict[str, Any] = field(default_factory=dict)


def _check_limits(sql: str, params: Sequence[Any]) -> None:
    if len(sql.encode()) > MAX_SQL_BYTES:
        raise D1Error(f"SQL statement longer than {MAX_SQL_BYTES} bytes")
    if len(params) > MAX_BOUND_PARAMETERS:
        raise D1Error(
            f"too many bound parameters: {len(params)} (D1 allows {MAX_BOUND_PARAMETERS})"
        )
    for value in params:
        if isinstance(value, (str, bytes, bytearray)) and len(value) > MAX_VALUE_BYTES:
            raise D1Error(f"bound value larger than {MAX_VALUE_BYTES} bytes")


def _is_read(sql: str) -> bool:
    return sql.lstrip().lower().startswith(_READ_PREFIXES)


class PreparedStatement:
    """A statement with its bound parameters. ``bind`` returns a new statement."""

    __slots__ = ("_db", "sql", "params")

    def __init__(self, db: "D1Database", sql: str, params: tuple[Any, ...] = ()) -> None:
        self._db = db
        self.sql = sql
        self.params = params

    def bind(self, *params: Any) -> "PreparedStatement":
        _check_limits(self.sql, params)
        return PreparedStatement(self._db, self.sql, params)

    async def first(self, column: str | None = None) -> Any:
        """The first row as a dict (or one column of it), or None."""
        rows = (await self._db._run_one(self, want_rows=True)).results
        if not rows:
            return None
        return rows[0] if column is None else rows[0][column]

    async def all(self) -> D1Result:
        return await self._db._run_one(self, want_rows=True)

    async def run(self) -> D1Result:
        return await self._db._run_one(self, want_rows=True)

    async def raw(self, column_names: bool = False) -> list[list[Any]]:
        """Rows as lists; with ``column_names`` the first list holds the column names."""
        return await self._db._run_raw(self, column_names)


class D1Database:
    """The D1 binding. One instance per database file; share it across workers and actors."""

    def __init__(self, path: str | Path, *, readers: int = 2) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._writer = ThreadPoolExecutor(1, thread_name_prefix="d1-writer")
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="d1-reader")
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._closed = False

    # --- public API mirroring D1 ----------------------------------------------------------
    def prepare(self, sql: str) -> PreparedStatement:
        return PreparedStatement(self, sql)

    async def batch(self, statements: Sequence[PreparedStatement]) -> list[D1Result]:
        """Run the statements in one transaction: all are committed, or none."""
        return await self._submit(self._writer, self._batch_sync, list(statements))

    async def exec(self, sql: str) -> dict[str, Any]:
        """Run one or more statements separated by semicolons (no parameters), e.g. a migration."""
        started = time.perf_counter()
        count = await self._submit(self._writer, self._exec_sync, sql)
        return {"count": count, "duration": (time.perf_counter() - started) * 1000}

    # --- plain-Python conveniences ---------------------------------------------------------
    async def run_in_transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the writer thread inside one transaction.

        For migrations and administrative code that needs read-then-write atomicity beyond
        what ``batch`` expresses. ``fn`` must not block on anything but SQLite.
        """
        return await self._submit(self._writer, self._transaction_sync, fn)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._writer.shutdown(wait=True)
        self._readers.shutdown(wait=True)
        with self._connections_lock:
            for conn in self._connections:
                conn.close()
            self._connections.clear()

    # --- internals ------------------------------------------------------------------------
    async def _submit(self, pool: ThreadPoolExecutor, fn: Callable[..., T], *args: Any) -> T:
        if self._closed:
            raise D1Error("database is closed")
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(pool, fn, *args)

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=10000")
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    async def _run_one(self, stmt: PreparedStatement, want_rows: bool) -> D1Result:
        if _is_read(stmt.sql):
            return await self._submit(self._readers, self._read_sync, stmt)
        return (await self.batch([stmt]))[0]

    async def _run_raw(self, stmt: PreparedStatement, column_names: bool) -> list[list[Any]]:
        pool = self._readers if _is_read(stmt.sql) else self._writer
        return await self._submit(pool, self._raw_sync, stmt, column_names)

    @staticmethod
    def _rows(cursor: sqlite3.Cursor) -> list[dict[str, Any]]:
        if cursor.description is None:
            return []
        names = [d[0] for d in cursor.description]
        return [dict(zip(names, row)) for row in cursor.fetchall()]

    def _read_sync(self, stmt: PreparedStatement) -> D1Result:
        started = time.perf_counter()
        try:
            cursor = self._connection().execute(stmt.sql, stmt.params)
            rows = self._rows(cursor)
        except sqlite3.Error as exc:
            raise D1Error(f"{exc} in: {stmt.sql.strip()[:200]}") from exc
        return D1Result(
            results=rows,
            meta={"duration": (time.perf_counter() - started) * 1000, "rows_read": len(rows)},
        )

    def _raw_sync(self, stmt: PreparedStatement, column_names: bool) -> list[list[Any]]:
        try:
            conn = self._connection()
            cursor = conn.execute(stmt.sql, stmt.params)
            rows = [list(r) for r in cursor.fetchall()]
        except sqlite3.Error as exc:
            raise D1Error(f"{exc} in: {stmt.sql.strip()[:200]}") from exc
        if column_names and cursor.description is not None:
            rows.insert(0, [d[0] for d in cursor.description])
        return rows

    def _batch_sync(self, statements: list[PreparedStatement]) -> list[D1Result]:
        conn = self._connection()
        results: list[D1Result] = []
        started = time.perf_counter()
        conn.execute("BEGIN IMMEDIATE")
        try:
            for stmt in statements:
                cursor = conn.execute(stmt.sql, stmt.params)
                rows = self._rows(cursor)
                results.append(
                    D1Result(
                        results=rows,
                        meta={
                            "changes": cursor.rowcount if cursor.rowcount >= 0 else 0,
                            "last_row_id": cursor.lastrowid,
                        },
                    )
                )
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            conn.execute("ROLLBACK")
            raise D1Error(f"batch rolled back: {exc}") from exc
        except BaseException:
            conn.execute("ROLLBACK")
            raise
        duration = (time.perf_counter() - started) * 1000
        for result in results:
            result.meta["duration"] = duration
        return results

    def _exec_sync(self, sql: str) -> int:
        conn = self._connection()
        try:
            conn.executescript(sql)
        except sqlite3.Error as exc:
            raise D1Error(f"exec failed: {exc}") from exc
        return sum(1 for part in sql.split(";") if part.strip())

    def _transaction_sync(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        conn = self._connection()
        conn.execute("BEGIN IMMEDIATE")
        try:
            value = fn(conn)
            conn.execute("COMMIT")
            return value
        except BaseException:
            conn.execute("ROLLBACK")
            raise
