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
- Group commit: batches queued while the writer is busy are run together in one SQLite
  transaction, each inside its own SAVEPOINT. A failing batch is rolled back to its savepoint
  and fails only its own caller; the others commit. No caller hears of success before the
  COMMIT that made its batch durable has returned.
- ``read_many`` runs several reads in one thread hop, inside one read transaction (one
  consistent snapshot).
- The platform's limits are enforced so code stays portable: at most 100 bound parameters per
  statement, at most 2 MB per bound value, at most 100 KB of SQL per statement.
"""

from __future__ import annotations

import asyncio
import logging
import queue
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


def _utf8_length_over(text: str, limit: int) -> bool:
    """Whether ``text`` takes more than ``limit`` bytes in UTF-8 (encoding it only when its
    length in characters leaves the answer open: a character takes 1 to 4 bytes)."""
    if len(text) <= limit // 4:
        return False
    return len(text) > limit or len(text.encode("utf-8", "surrogatepass")) > limit


def _check_limits(sql: str, params: Sequence[Any]) -> None:
    if len(sql) > _SQL_CHARS_SURELY_UNDER and _utf8_length_over(sql, MAX_SQL_BYTES):
        raise D1Error(f"SQL statement longer than {MAX_SQL_BYTES} bytes")
    if len(params) > MAX_BOUND_PARAMETERS:
        raise D1Error(
            f"too many bound parameters: {len(params)} (D1 allows {MAX_BOUND_PARAMETERS})"
        )
    for value in params:
        kind = type(value)
        if kind is int or value is None:
            continue
        if kind is str or isinstance(value, str):
            if len(value) > _VALUE_CHARS_SURELY_UNDER and _utf8_length_over(value, MAX_VALUE_BYTES):
                raise D1Error(f"bound value larger than {MAX_VALUE_BYTES} bytes")
        elif isinstance(value, (bytes, bytearray)) and len(value) > MAX_VALUE_BYTES:
            raise D1Error(f"bound value larger than {MAX_VALUE_BYTES} bytes")


# A string of at most this many characters is within the limit whatever its characters
# (UTF-8 takes at most 4 bytes per character): the common case needs no encoding.
_SQL_CHARS_SURELY_UNDER = MAX_SQL_BYTES // 4
_VALUE_CHARS_SURELY_UNDER = MAX_VALUE_BYTES // 4


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


@dataclass(eq=False)
class _WriteJob:
    """One caller's unit of work for the writer thread: ``work(connection)`` runs inside a
    transaction (a batch, a raw write, a ``run_in_transaction`` function), or ``script`` runs
    alone outside any (``exec``). The outcome goes to ``future`` on ``loop``."""

    loop: asyncio.AbstractEventLoop
    future: "asyncio.Future[Any]"
    work: Callable[[sqlite3.Connection], Any] | None = None
    script: str | None = None
    answered: bool = False


_STOP = object()


class D1Database:
    """The D1 binding. One instance per database file; share it across workers and actors."""

    # At most this many queued batches share one transaction (bounds a caller's wait).
    MAX_GROUP = 64
    # WAL checkpoints run on their own thread, after this many commits, so that copying
    # pages back into the database (and its fsync) is off the writer's path. SQLite's own
    # checkpoint on commit stays as a backstop, at a larger WAL (pages).
    CHECKPOINT_EVERY_COMMITS = 200
    BACKSTOP_CHECKPOINT_PAGES = 20000

    def __init__(self, path: str | Path, *, readers: int = 2) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._local = threading.local()
        self._jobs: "queue.SimpleQueue[Any]" = queue.SimpleQueue()
        self._writer = threading.Thread(target=self._writer_loop, name="d1-writer", daemon=True)
        self._writer.start()
        self._commits = 0
        self._checkpoint_wanted = threading.Event()
        self._checkpointer: threading.Thread | None = None
        if self.path != ":memory:":
            self._checkpointer = threading.Thread(
                target=self._checkpoint_loop, name="d1-checkpoint", daemon=True
            )
            self._checkpointer.start()
        self._readers = ThreadPoolExecutor(readers, thread_name_prefix="d1-reader")
        self._connections: list[sqlite3.Connection] = []
        self._connections_lock = threading.Lock()
        self._closed = False

    # --- public API mirroring D1 ----------------------------------------------------------
    def prepare(self, sql: str) -> PreparedStatement:
        return PreparedStatement(self, sql)

    async def batch(self, statements: Sequence[PreparedStatement]) -> list[D1Result]:
        """Run the statements in one transaction: all are committed, or none."""
        statements = list(statements)
        return await self._write(lambda conn: self._run_statements(conn, statements))

    async def exec(self, sql: str) -> dict[str, Any]:
        """Run one or more statements separated by semicolons (no parameters), e.g. a migration."""
        started = time.perf_counter()
        count = await self._enqueue(script=sql)
        return {"count": count, "duration": (time.perf_counter() - started) * 1000}

    # --- plain-Python conveniences ---------------------------------------------------------
    async def read_many(self, statements: Sequence[PreparedStatement]) -> list[D1Result]:
        """Run several reads in one hop to a reader thread, inside one read transaction, so
        that they see one consistent snapshot of the database. Every statement must be a
        read (``SELECT``/``WITH``/``EXPLAIN``); a write is refused before anything runs."""
        statements = list(statements)
        for stmt in statements:
            if not _is_read(stmt.sql):
                raise D1Error(f"read_many takes reads only, not: {stmt.sql.strip()[:200]}")
        if not statements:
            return []
        return await self._submit(self._readers, self._read_many_sync, statements)

    async def run_in_transaction(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        """Run ``fn(connection)`` on the writer thread inside one transaction.

        For migrations and administrative code that needs read-then-write atomicity beyond
        what ``batch`` expresses. ``fn`` must not block on anything but SQLite, and must not
        begin, commit or roll back transactions itself (it may run inside a savepoint of a
        group commit; if it raises, everything it wrote is rolled back).
        """
        return await self._write(fn)

    def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        self._jobs.put(_STOP)  # after every job already queued
        self._writer.join()
        if self._checkpointer is not None:
            self._checkpoint_wanted.set()
            self._checkpointer.join()
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

    async def _write(self, work: Callable[[sqlite3.Connection], T]) -> T:
        return await self._enqueue(work=work)

    async def _enqueue(
        self, *, work: Callable[[sqlite3.Connection], Any] | None = None, script: str | None = None
    ) -> Any:
        if self._closed:
            raise D1Error("database is closed")
        loop = asyncio.get_running_loop()
        job = _WriteJob(loop, loop.create_future(), work, script)
        self._jobs.put(job)
        return await job.future

    def _connection(self) -> sqlite3.Connection:
        conn: sqlite3.Connection | None = getattr(self._local, "conn", None)
        if conn is None:
            conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("PRAGMA foreign_keys=ON")
            conn.execute("PRAGMA busy_timeout=10000")
            # Savepoints (one per job of a group commit) keep their undo pages in a
            # statement journal: in memory rather than a temporary file, which cost about
            # as much as the rows themselves.
            conn.execute("PRAGMA temp_store=MEMORY")
            if threading.current_thread() is self._writer:
                conn.execute(f"PRAGMA wal_autocheckpoint={self.BACKSTOP_CHECKPOINT_PAGES}")
            self._local.conn = conn
            with self._connections_lock:
                self._connections.append(conn)
        return conn

    async def _run_one(self, stmt: PreparedStatement, want_rows: bool) -> D1Result:
        if _is_read(stmt.sql):
            return await self._submit(self._readers, self._read_sync, stmt)
        return (await self.batch([stmt]))[0]

    async def _run_raw(self, stmt: PreparedStatement, column_names: bool) -> list[list[Any]]:
        if _is_read(stmt.sql):
            return await self._submit(self._readers, self._raw_sync, stmt, column_names)
        return await self._write(lambda conn: self._raw_rows(conn, stmt, column_names))

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

    def _read_many_sync(self, statements: list[PreparedStatement]) -> list[D1Result]:
        conn = self._connection()
        out: list[D1Result] = []
        conn.execute("BEGIN")
        try:
            for stmt in statements:
                started = time.perf_counter()
                try:
                    rows = self._rows(conn.execute(stmt.sql, stmt.params))
                except sqlite3.Error as exc:
                    raise D1Error(f"{exc} in: {stmt.sql.strip()[:200]}") from exc
                out.append(
                    D1Result(
                        results=rows,
                        meta={"duration": (time.perf_counter() - started) * 1000, "rows_read": len(rows)},
                    )
                )
        finally:
            if conn.in_transaction:
                conn.execute("COMMIT")  # a read transaction: nothing to write, ends the snapshot
        return out

    def _raw_sync(self, stmt: PreparedStatement, column_names: bool) -> list[list[Any]]:
        return self._raw_rows(self._connection(), stmt, column_names)

    @staticmethod
    def _raw_rows(conn: sqlite3.Connection, stmt: PreparedStatement, column_names: bool) -> list[list[Any]]:
        try:
            cursor = conn.execute(stmt.sql, stmt.params)
            rows = [list(r) for r in cursor.fetchall()]
        except sqlite3.Error as exc:
            raise D1Error(f"{exc} in: {stmt.sql.strip()[:200]}") from exc
        if column_names and cursor.description is not None:
            rows.insert(0, [d[0] for d in cursor.description])
        return rows

    def _run_statements(self, conn: sqlite3.Connection, statements: list[PreparedStatement]) -> list[D1Result]:
        """A batch's statements, in the transaction (and savepoint) the writer opened."""
        results: list[D1Result] = []
        started = time.perf_counter()
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
        except sqlite3.Error as exc:
            raise D1Error(f"batch rolled back: {exc}") from exc
        duration = (time.perf_counter() - started) * 1000
        for result in results:
            result.meta["duration"] = duration
        return results

    # --- the writer thread ----------------------------------------------------------------
    def _writer_loop(self) -> None:
        """Take the next job and every job queued behind it (up to ``MAX_GROUP``), run them
        as one group commit, answer each caller after the COMMIT; scripts run alone."""
        carry: Any = None
        while True:
            job = carry if carry is not None else self._jobs.get()
            carry = None
            if job is _STOP:
                return
            if job.script is not None:
                self._run_script(job)
                continue
            group = [job]
            while len(group) < self.MAX_GROUP:
                try:
                    nxt = self._jobs.get_nowait()
                except queue.Empty:
                    break
                if nxt is _STOP or nxt.script is not None:
                    carry = nxt
                    break
                group.append(nxt)
            live = [j for j in group if not j.future.cancelled()]
            try:
                self._run_group(live)
            except BaseException as exc:  # keep the writer alive: fail what is unanswered
                log.exception("d1: the writer failed a group of %d jobs", len(live))
                conn = self._connection()
                if conn.in_transaction:
                    try:
                        conn.execute("ROLLBACK")
                    except sqlite3.Error:
                        log.exception("d1: could not roll back after a writer failure")
                for job in live:
                    if not job.answered:
                        self._answer(job, error=D1Error(f"batch rolled back: {exc}"))

    def _run_group(self, jobs: list[_WriteJob]) -> None:
        """Run ``jobs`` in one transaction, each in a SAVEPOINT when there are several: a job
        that fails is rolled back to its savepoint (a lone job: with the transaction) and
        answered with its error; the rest commit together, and are
        answered only once COMMIT has returned (nothing is acknowledged before it is durable).

        Should SQLite abandon the whole transaction (an I/O error, a full disk), the failing
        job gets its error and the jobs that had succeeded so far run again in a new
        transaction (their callers have not been answered). Should COMMIT itself fail, each
        job runs again alone, so that only the one at fault fails."""
        conn = self._connection()
        pending = jobs
        while pending:
            done: list[tuple[_WriteJob, Any]] = []
            retry: list[_WriteJob] = []
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                for job in pending:
                    self._answer(job, error=D1Error(f"could not begin a transaction: {exc}"))
                return
            # A lone job needs no savepoint: if it fails, the transaction is all it wrote.
            savepoints = len(pending) > 1
            for index, job in enumerate(pending):
                if savepoints:
                    conn.execute("SAVEPOINT d1_batch")
                try:
                    value = job.work(conn)  # type: ignore[misc]
                except BaseException as exc:  # the caller's failure, whatever it is
                    self._answer(job, error=exc)
                    if conn.in_transaction and savepoints:
                        conn.execute("ROLLBACK TO d1_batch")
                        conn.execute("RELEASE d1_batch")
                        continue
                    if conn.in_transaction:  # the lone job: roll its transaction back below
                        continue
                    # SQLite rolled the whole transaction back: run the others again.
                    retry = [j for j, _ in done] + pending[index + 1:]
                    done = []
                    break
                if savepoints:
                    conn.execute("RELEASE d1_batch")
                done.append((job, value))
            if not done:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                pending = retry
                continue
            try:
                conn.execute("COMMIT")
            except sqlite3.Error as exc:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                if len(done) == 1:
                    self._answer(done[0][0], error=D1Error(f"batch rolled back: commit failed: {exc}"))
                else:
                    for job, _ in done:
                        self._run_group([job])
                return
            for job, value in done:
                self._answer(job, value=value)
            self._commits += 1
            if self._commits >= self.CHECKPOINT_EVERY_COMMITS:
                self._commits = 0
                self._checkpoint_wanted.set()
            pending = retry

    def _checkpoint_loop(self) -> None:
        """Copy committed WAL frames back into the database when the writer asks (PASSIVE:
        never waits for, nor blocks, readers and the writer)."""
        while True:
            self._checkpoint_wanted.wait()
            self._checkpoint_wanted.clear()
            if self._closed:
                return
            try:
                self._connection().execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
            except sqlite3.Error:
                log.exception("d1: WAL checkpoint failed (SQLite's own checkpoint remains)")

    def _run_script(self, job: _WriteJob) -> None:
        conn = self._connection()
        try:
            conn.executescript(job.script or "")
        except sqlite3.Error as exc:
            self._answer(job, error=D1Error(f"exec failed: {exc}"))
            return
        self._answer(job, value=sum(1 for part in (job.script or "").split(";") if part.strip()))

    @staticmethod
    def _answer(job: _WriteJob, *, value: Any = None, error: BaseException | None = None) -> None:
        job.answered = True

        def settle() -> None:
            if job.future.done():  # the caller was cancelled meanwhile
                return
            if error is not None:
                job.future.set_exception(error)
            else:
                job.future.set_result(value)

        try:
            job.loop.call_soon_threadsafe(settle)
        except RuntimeError:  # the caller's event loop is closed: nobody is waiting
            log.debug("d1: a write finished after its event loop closed")
