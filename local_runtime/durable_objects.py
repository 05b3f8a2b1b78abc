"""The local host for Durable Object actors.

Mirrors the platform's shape::

    stub = env.ROOMS.get(env.ROOMS.id_from_name(room_id))   # also idFromName
    event_id = await stub.send_event(sender, type, content, txn)

Guarantees:
- **Single writer.** Calls to one actor never run concurrently: each actor has an input gate
  held for the whole call (stricter than the platform, which only closes it during storage
  operations). Different actors run concurrently. An actor must not call itself through its
  own stub (that would wait on its own gate).
- **Plain data.** Arguments and results are copied through JSON, so a caller never shares an
  object with an actor, and a later runtime can host actors in other processes unchanged.
- **Transactional storage.** ``ctx.storage`` (get/put/delete/list, ``sql.exec``) lives in a
  SQLite file per actor. Writes made during one call are committed when the call returns,
  before its result is delivered (the platform's output gate), and rolled back if it raises,
  so a failed call changes nothing in storage and an exception fails that call only.
- **Alarms.** ``ctx.storage.set_alarm(epoch_ms)`` schedules ``alarm()``; pending alarms are
  indexed per namespace and re-armed when the namespace starts again, so they survive a restart.
  A failing alarm is retried with exponential backoff, up to 6 times.
- **Hibernation.** Actors idle for ``idle_seconds`` are evicted from memory and rebuilt from
  storage (constructor, then any ``block_concurrency_while`` work) on their next call.
- **Output gate for other bindings.** A method marked ``@pipelined`` may return
  ``OutputGate(awaitable)``: the input gate opens at once (the next call may start) while the
  caller's answer waits for the awaitable, typically writes the actor queued on D1 (the
  platform holds a call's output until its storage writes are confirmed in the same way).
  A call to any method *not* marked ``@pipelined`` first waits until every gated output of
  the actor has settled, so it sees all of the actor's writes committed, as before.
- **Reset.** ``ctx.abort(reason)`` discards the instance (as on the platform): calls already
  queued on it are answered by a fresh instance built from storage.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import json
import logging
import os
import pickle
import sqlite3
import time
from pathlib import Path
from typing import Any, Awaitable, Callable, Iterator, TypeVar

log = logging.getLogger(__name__)

ALARM_MAX_RETRIES = 6
# The platform's limit on one stored key and value (SQLite-backed Durable Objects: 2 MB).
MAX_STORAGE_VALUE_BYTES = 2 * 1024 * 1024


class DurableObjectId:
    """An actor's identity: 64 hex characters, derived from a name or random."""

    __slots__ = ("hex", "name")

    def __init__(self, hex_id: str, name: str | None = None) -> None:
        self.hex = hex_id
        self.name = name

    def __str__(self) -> str:
        return self.hex

    toString = __str__

    def __eq__(self, other: object) -> bool:
        return isinstance(other, DurableObjectId) and other.hex == self.hex

    def __hash__(self) -> int:
        return hash(self.hex)


class SqlCursor:
    """What ``ctx.storage.sql.exec`` returns: iterable rows as dicts."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self._names = [d[0] for d in cursor.description] if cursor.description else []
        self._rows = cursor.fetchall() if cursor.description else []
        self.rows_written = cursor.rowcount if cursor.rowcount > 0 else 0

    @property
    def column_names(self) -> list[str]:
        return list(self._names)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return (dict(zip(self._names, row)) for row in self._rows)

    def to_array(self) -> list[dict[str, Any]]:
        return list(self)

    toArray = to_array

    def one(self) -> dict[str, Any]:
        if len(self._rows) != 1:
            raise ValueError(f"expected exactly one row, got {len(self._rows)}")
        return dict(zip(self._names, self._rows[0]))

    def raw(self) -> list[tuple[Any, ...]]:
        return list(self._rows)


class SqlStorage:
    def __init__(self, storage: "DurableObjectStorage") -> None:
        self._storage = storage

    def exec(self, query: str, *bindings: Any) -> SqlCursor:
        conn = self._storage._writable()
        return SqlCursor(conn.execute(query, bindings))


class DurableObjectStorage:
    """An actor's private storage, one SQLite file, opened on first use."""

    def __init__(self, path: Path, on_alarm_change: Callable[[float | None], None]) -> None:
        self._path = path
        self._conn: sqlite3.Connection | None = None
        self._in_txn = False
        self._on_alarm_change = on_alarm_change
        self.sql = SqlStorage(self)

    # key-value API (values are any picklable plain data, as the platform's structured clone)
    async def get(self, key: str | list[str]) -> Any:
        conn = self._open()
        if isinstance(key, list):
            out = {}
            for k in key:
                row = conn.execute("SELECT value FROM _kv WHERE key = ?", (k,)).fetchone()
                if row is not None:
                    out[k] = pickle.loads(row[0])
            return out
        row = conn.execute("SELECT value FROM _kv WHERE key = ?", (key,)).fetchone()
        return None if row is None else pickle.loads(row[0])

    async def put(self, key: str | dict[str, Any], value: Any = None) -> None:
        entries = key.items() if isinstance(key, dict) else [(key, value)]
        conn = self._writable()
        for k, v in entries:
            data = pickle.dumps(v)
            if len(k.encode()) + len(data) > MAX_STORAGE_VALUE_BYTES:
                raise ValueError(
                    f"storage value for {k!r} is larger than the platform's {MAX_STORAGE_VALUE_BYTES} bytes"
                )
            conn.execute("INSERT OR REPLACE INTO _kv (key, value) VALUES (?, ?)", (k, data))

    async def delete(self, key: str | list[str]) -> bool | int:
        conn = self._writable()
        keys = key if isinstance(key, list) else [key]
        deleted = 0
        for k in keys:
            deleted += conn.execute("DELETE FROM _kv WHERE key = ?", (k,)).rowcount
        return deleted if isinstance(key, list) else bool(deleted)

    async def delete_all(self) -> None:
        conn = self._writable()
        conn.execute("DELETE FROM _kv")
        await self.delete_alarm()

    deleteAll = delete_all

    async def list(
        self, prefix: str = "", start: str | None = None, end: str | None = None,
        limit: int | None = None, reverse: bool = False,
    ) -> dict[str, Any]:
        conn = self._open()
        sql = "SELECT key, value FROM _kv WHERE key >= ?"
        params: list[Any] = [start if start is not None and start > prefix else prefix]
        if end is not None:
            sql += " AND key < ?"
            params.append(end)
        sql += " ORDER BY key" + (" DESC" if reverse else "")
        out: dict[str, Any] = {}
        for k, v in conn.execute(sql, params):
            if not k.startswith(prefix):
                if not reverse:
                    break
                continue
            out[k] = pickle.loads(v)
            if limit is not None and len(out) >= limit:
                break
        return out

    # alarms
    async def get_alarm(self) -> float | None:
        row = self._open().execute("SELECT at FROM _alarm WHERE id = 0").fetchone()
        return None if row is None else row[0]

    async def set_alarm(self, scheduled_time_ms: float) -> None:
        self._writable().execute(
            "INSERT OR REPLACE INTO _alarm (id, at) VALUES (0, ?)", (float(scheduled_time_ms),)
        )
        self._on_alarm_change(float(scheduled_time_ms))

    async def delete_alarm(self) -> None:
        self._writable().execute("DELETE FROM _alarm")
        self._on_alarm_change(None)

    getAlarm = get_alarm
    setAlarm = set_alarm
    deleteAlarm = delete_alarm

    # transaction control, used by the host around each call
    def _open(self) -> sqlite3.Connection:
        if self._conn is None:
            self._path.parent.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self._path), isolation_level=None, check_same_thread=False)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("CREATE TABLE IF NOT EXISTS _kv (key TEXT PRIMARY KEY, value BLOB)")
            conn.execute("CREATE TABLE IF NOT EXISTS _alarm (id INTEGER PRIMARY KEY, at REAL)")
            self._conn = conn
        return self._conn

    def _writable(self) -> sqlite3.Connection:
        conn = self._open()
        if not self._in_txn:
            conn.execute("BEGIN IMMEDIATE")
            self._in_txn = True
        return conn

    def _commit(self) -> None:
        if self._in_txn and self._conn is not None:
            self._conn.execute("COMMIT")
        self._in_txn = False

    def _rollback(self) -> None:
        if self._in_txn and self._conn is not None:
            self._conn.execute("ROLLBACK")
        self._in_txn = False

    def _close(self) -> None:
        if self._conn is not None:
            self._rollback()
            self._conn.close()
            self._conn = None


class DurableObjectState:
    """``ctx`` as an actor sees it: its id, its storage, and start-up gating."""

    def __init__(self, object_id: DurableObjectId, storage: DurableObjectStorage) -> None:
        self.id = object_id
        self.storage = storage
        self._startup: list[Callable[[], Awaitable[Any]]] = []
        self._on_abort: Callable[[str], None] | None = None
        self.aborted: str | None = None

    def abort(self, reason: str = "aborted") -> None:
        """Reset the actor: this instance takes no further calls; the next call (and any
        already waiting at its gate) is delivered to a new instance built from storage."""
        if self.aborted is None:
            self.aborted = reason
            if self._on_abort is not None:
                self._on_abort(reason)

    def block_concurrency_while(self, fn: Callable[[], Awaitable[Any]]) -> None:
        """Run ``fn`` before any call is delivered (used in constructors to load state)."""
        self._startup.append(fn)

    blockConcurrencyWhile = block_concurrency_while


class DurableObject:
    """Base class of every actor, constructed with ``(ctx, env)`` as on the platform."""

    def __init__(self, ctx: DurableObjectState, env: Any) -> None:
        self.ctx = ctx
        self.env = env

    async def alarm(self) -> None:
        """Called when an alarm set through ``ctx.storage.set_alarm`` is due."""
        raise RuntimeError(f"{type(self).__name__} set an alarm but defines no alarm()")


class OutputGate:
    """What a ``@pipelined`` method returns to answer only once ``awaitable`` is done: the
    caller gets its result (or its exception), while the actor's gate is already open."""

    __slots__ = ("awaitable",)

    def __init__(self, awaitable: Awaitable[Any]) -> None:
        self.awaitable = awaitable


F = TypeVar("F", bound=Callable[..., Any])


def pipelined(method: F) -> F:
    """Mark an actor method as one that may run while earlier calls' gated outputs are still
    pending (every other method waits for them first)."""
    method.__dict__["pipelined"] = True
    return method


class _Slot:
    """One live actor: its instance, its input gate, its pending gated outputs and when it
    was last used."""

    __slots__ = ("instance", "ctx", "gate", "last_used", "busy", "outputs")

    def __init__(self, instance: DurableObject, ctx: DurableObjectState) -> None:
        self.instance = instance
        self.ctx = ctx
        self.gate = asyncio.Lock()
        self.last_used = time.monotonic()
        self.busy = 0
        self.outputs: set[asyncio.Future[Any]] = set()

    def output_done(self, output: "asyncio.Future[Any]") -> None:
        self.outputs.discard(output)
        if not output.cancelled():
            output.exception()  # retrieved: its caller may have gone away

    async def settle_outputs(self) -> None:
        """Wait until every gated output of the actor has settled (success or failure)."""
        while self.outputs:
            await asyncio.wait(list(self.outputs))


_SCALARS = (str, int, float, bool, type(None))


def _plain(value: Any) -> Any:
    """Copy a value as JSON would carry it between processes (tuples become lists); raise
    TypeError for anything JSON cannot carry."""
    kind = type(value)
    if kind in _SCALARS:
        return value
    if kind is list or kind is tuple:
        return [_plain(item) for item in value]
    if kind is dict:
        out = {}
        for key, item in value.items():
            if type(key) is not str:
                raise TypeError(f"actor call data must have string keys, not {key!r}")
            out[key] = _plain(item)
        return out
    if isinstance(value, _SCALARS):  # subclasses such as enum.StrEnum or bool-like ints
        return json.loads(json.dumps(value))
    raise TypeError(f"actor calls take and return plain data, not {kind.__name__}")


class DurableObjectNamespace:
    """A binding such as ``env.ROOMS``: maps ids to actors of one class."""

    def __init__(
        self,
        name: str,
        cls: type[DurableObject],
        env: Any,
        storage_dir: Path,
        *,
        idle_seconds: float = 120.0,
    ) -> None:
        self.name = name
        self.cls = cls
        self.env = env
        self.storage_dir = Path(storage_dir) / name
        self.idle_seconds = idle_seconds
        self._slots: dict[str, _Slot] = {}
        self._creating: dict[str, asyncio.Lock] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._alarm_index: sqlite3.Connection | None = None
        self._sweeper: asyncio.Task[None] | None = None
        self._closing: set[asyncio.Task[None]] = set()  # aborted instances closing their storage
        self._closed = False

    # --- the platform's API ---------------------------------------------------------------
    def id_from_name(self, name: str) -> DurableObjectId:
        digest = hashlib.sha256(f"{self.name}\x00{name}".encode()).hexdigest()
        return DurableObjectId(digest, name)

    def id_from_string(self, hex_id: str) -> DurableObjectId:
        if len(hex_id) != 64 or any(c not in "0123456789abcdef" for c in hex_id):
            raise ValueError("not a Durable Object id")
        return DurableObjectId(hex_id)

    def new_unique_id(self) -> DurableObjectId:
        return DurableObjectId(os.urandom(32).hex())

    def get(self, object_id: DurableObjectId) -> "DurableObjectStub":
        return DurableObjectStub(self, object_id)

    def get_by_name(self, name: str) -> "DurableObjectStub":
        return self.get(self.id_from_name(name))

    idFromName = id_from_name
    idFromString = id_from_string
    newUniqueId = new_unique_id
    getByName = get_by_name

    # --- lifecycle ------------------------------------------------------------------------
    async def start(self) -> None:
        """Re-arm pending alarms and start evicting idle actors."""
        self.storage_dir.mkdir(parents=True, exist_ok=True)
        index = self._index()
        for hex_id, at in index.execute("SELECT id, at FROM alarms").fetchall():
            self._arm(hex_id, at)
        if self._sweeper is None:
            self._sweeper = asyncio.get_running_loop().create_task(self._sweep_forever())

    async def close(self) -> None:
        self._closed = True
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError):  # the sweeper ends by being cancelled
                await self._sweeper
            self._sweeper = None
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()
        for hex_id in list(self._slots):
            await self.evict(hex_id)
        if self._closing:
            await asyncio.gather(*self._closing, return_exceptions=True)
        if self._alarm_index is not None:
            self._alarm_index.close()
            self._alarm_index = None

    async def evict(self, hex_id: str) -> bool:
        """Drop an actor from memory (waiting for its call in flight); storage stays."""
        slot = self._slots.get(hex_id)
        if slot is None:
            return False
        async with slot.gate:
            await slot.settle_outputs()
            if self._slots.get(hex_id) is slot:
                del self._slots[hex_id]
                slot.ctx.storage._close()
        return True

    def _aborted(self, hex_id: str, slot: _Slot, reason: str) -> None:
        """Forget an aborted instance; its storage closes once its last call is done."""
        log.warning("%s %s: actor reset (%s)", self.name, hex_id[:12], reason)
        if self._slots.get(hex_id) is slot:
            del self._slots[hex_id]

        async def close_when_idle() -> None:
            async with slot.gate:
                await slot.settle_outputs()
                slot.ctx.storage._close()

        closing = asyncio.get_running_loop().create_task(close_when_idle())
        self._closing.add(closing)  # held until done (the loop keeps only a weak reference)
        closing.add_done_callback(self._closing.discard)

    async def evict_idle(self) -> int:
        cutoff = time.monotonic() - self.idle_seconds
        idle = [h for h, s in self._slots.items() if s.last_used < cutoff and not s.busy]
        for hex_id in idle:
            await self.evict(hex_id)
        if idle:
            log.debug("%s: evicted %d idle actors", self.name, len(idle))
        return len(idle)

    def live_count(self) -> int:
        return len(self._slots)

    # --- calls ----------------------------------------------------------------------------
    async def call(self, object_id: DurableObjectId, method: str, args: tuple, kwargs: dict) -> Any:
        if method.startswith("_") or method in ("alarm", "ctx", "env"):
            raise AttributeError(f"{self.cls.__name__}.{method} cannot be called through a stub")
        args = _plain(args)
        kwargs = _plain(kwargs) if kwargs else kwargs
        while True:
            slot = self._slots.get(object_id.hex)
            if slot is None:
                slot = await self._slot(object_id)
            slot.busy += 1
            try:
                async with slot.gate:
                    if slot.ctx.aborted is not None:
                        continue  # reset while this call waited: a fresh instance takes it
                    fn = getattr(slot.instance, method, None)
                    if fn is None or not callable(fn):
                        raise AttributeError(f"{self.cls.__name__} has no method {method!r}")
                    if not getattr(fn, "pipelined", False):
                        await slot.settle_outputs()
                    storage = slot.ctx.storage
                    try:
                        result = await fn(*args, **kwargs)
                    except BaseException:
                        storage._rollback()
                        raise
                    storage._commit()
                    if not isinstance(result, OutputGate):
                        return _plain(result)
                    output = asyncio.ensure_future(result.awaitable)
                    slot.outputs.add(output)
                    output.add_done_callback(slot.output_done)
                # The gate is open again; the answer waits for the output (even if this
                # caller goes away, the output runs to its end).
                return _plain(await asyncio.shield(output))
            finally:
                slot.busy -= 1
                slot.last_used = time.monotonic()

    async def _slot(self, object_id: DurableObjectId) -> _Slot:
        if self._closed:
            raise RuntimeError(f"namespace {self.name} is closed")
        hex_id = object_id.hex
        slot = self._slots.get(hex_id)
        if slot is not None:
            return slot
        lock = self._creating.setdefault(hex_id, asyncio.Lock())
        async with lock:
            slot = self._slots.get(hex_id)
            if slot is not None:
                return slot
            object_id = self._remember_name(object_id)
            storage = DurableObjectStorage(
                self.storage_dir / f"{hex_id}.sqlite",
                lambda at, h=hex_id: self._alarm_changed(h, at),
            )
            ctx = DurableObjectState(object_id, storage)
            instance = self.cls(ctx, self.env)
            try:
                for startup in ctx._startup:
                    await startup()
                storage._commit()
            except BaseException:
                storage._close()
                raise
            ctx._startup.clear()
            slot = _Slot(instance, ctx)
            ctx._on_abort = lambda reason, new=slot: self._aborted(hex_id, new, reason)
            self._slots[hex_id] = slot
        self._creating.pop(hex_id, None)
        return slot

    # --- alarms ---------------------------------------------------------------------------
    def _index(self) -> sqlite3.Connection:
        if self._alarm_index is None:
            self.storage_dir.mkdir(parents=True, exist_ok=True)
            conn = sqlite3.connect(str(self.storage_dir / "_alarms.sqlite"), isolation_level=None)
            conn.execute("PRAGMA journal_mode=WAL")
            conn.execute("PRAGMA synchronous=NORMAL")
            conn.execute("CREATE TABLE IF NOT EXISTS alarms (id TEXT PRIMARY KEY, at REAL NOT NULL)")
            conn.execute("CREATE TABLE IF NOT EXISTS names (id TEXT PRIMARY KEY, name TEXT NOT NULL)")
            self._alarm_index = conn
        return self._alarm_index

    def _remember_name(self, object_id: DurableObjectId) -> DurableObjectId:
        """Record id -> name once, so an actor woken by id alone (an alarm) knows its name,
        as ``ctx.id.name`` does on the platform."""
        index = self._index()
        if object_id.name is not None:
            index.execute(
                "INSERT OR IGNORE INTO names (id, name) VALUES (?, ?)", (object_id.hex, object_id.name)
            )
            return object_id
        row = index.execute("SELECT name FROM names WHERE id = ?", (object_id.hex,)).fetchone()
        return DurableObjectId(object_id.hex, row[0] if row else None)

    def _alarm_changed(self, hex_id: str, at: float | None) -> None:
        index = self._index()
        if at is None:
            index.execute("DELETE FROM alarms WHERE id = ?", (hex_id,))
            timer = self._timers.pop(hex_id, None)
            if timer is not None:
                timer.cancel()
        else:
            index.execute("INSERT OR REPLACE INTO alarms (id, at) VALUES (?, ?)", (hex_id, at))
            self._arm(hex_id, at)

    def _arm(self, hex_id: str, at_ms: float) -> None:
        self._schedule(hex_id, at_ms, 0, max(0.0, at_ms / 1000 - time.time()))

    def _schedule(self, hex_id: str, at_ms: float, attempt: int, delay: float) -> None:
        old = self._timers.pop(hex_id, None)
        if old is not None:
            old.cancel()
        loop = asyncio.get_running_loop()
        self._timers[hex_id] = loop.call_later(
            delay, lambda: loop.create_task(self._fire(hex_id, at_ms, attempt))
        )

    async def _fire(self, hex_id: str, at_ms: float, attempt: int) -> None:
        self._timers.pop(hex_id, None)
        if self._closed:
            return
        slot = await self._slot(DurableObjectId(hex_id))
        slot.busy += 1
        try:
            async with slot.gate:
                await slot.settle_outputs()
                storage = slot.ctx.storage
                if await storage.get_alarm() != at_ms:
                    return  # replaced or deleted meanwhile
                # Clear first, so the alarm may set the next one.
                await storage.delete_alarm()
                try:
                    await slot.instance.alarm()
                except Exception:
                    storage._rollback()  # the alarm row is back in storage
                    if attempt + 1 >= ALARM_MAX_RETRIES:
                        log.exception(
                            "%s %s: alarm failed %d times, giving up",
                            self.name, hex_id[:12], attempt + 1,
                        )
                        await storage.delete_alarm()
                        storage._commit()
                        return
                    delay = float(2**attempt)
                    log.warning(
                        "%s %s: alarm failed, retrying in %.0fs",
                        self.name, hex_id[:12], delay, exc_info=True,
                    )
                    self._index().execute(
                        "INSERT OR REPLACE INTO alarms (id, at) VALUES (?, ?)", (hex_id, at_ms)
                    )
                    self._schedule(hex_id, at_ms, attempt + 1, delay)
                    return
                storage._commit()
        finally:
            slot.busy -= 1
            slot.last_used = time.monotonic()

    async def _sweep_forever(self) -> None:
        interval = max(1.0, min(30.0, self.idle_seconds / 2))
        while True:
            await asyncio.sleep(interval)
            await self.evict_idle()


class DurableObjectStub:
    """An awaited-method proxy: ``await stub.method(*args)`` calls the actor."""

    __slots__ = ("_namespace", "id")

    def __init__(self, namespace: DurableObjectNamespace, object_id: DurableObjectId) -> None:
        self._namespace = namespace
        self.id = object_id

    def __getattr__(self, method: str) -> Callable[..., Awaitable[Any]]:
        if method.startswith("_"):
            raise AttributeError(method)
        namespace, object_id = self._namespace, self.id

        def call(*args: Any, **kwargs: Any) -> Awaitable[Any]:
            return namespace.call(object_id, method, args, kwargs)

        return call
