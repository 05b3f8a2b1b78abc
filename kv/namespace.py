"""A KV namespace binding shaped like Workers KV: a cache, never the source of truth.

API as Workers code uses it on ``env.CACHE``::

    await env.CACHE.put("key", "value", expiration_ttl=300, metadata={"v": 1})
    await env.CACHE.get("key")                 # text (default), or type="json" / "bytes"
    await env.CACHE.get_with_metadata("key")   # {"value": ..., "metadata": ...}
    await env.CACHE.delete("key")
    await env.CACHE.list(prefix="srv:", cursor=None, limit=1000)

Consistency, locally as on the platform:
- Inside one process, reads see that process's own writes at once (read-your-writes): the
  in-process TTL cache (cachetools) is updated on every put and delete.
- Between processes sharing the same file it is eventual: another process may serve its cached
  copy for up to ``cache_ttl`` seconds (60 by default, like a KV edge cache).
- Values may vanish at any time (expiry, eviction, a lost file). Everything put here must be
  rebuildable from D1 or from its origin, so losing KV loses nothing.

Limits kept for portability: keys at most 512 bytes, values at most 25 MiB, metadata at most
1024 bytes of JSON; an ``expiration_ttl`` under 60 s is honoured locally but logged as a warning,
since the platform refuses it.
"""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sqlite3
import threading
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, Literal

from cachetools import TTLCache

log = logging.getLogger(__name__)

MAX_KEY_BYTES = 512
MAX_VALUE_BYTES = 25 * 1024 * 1024
MAX_METADATA_BYTES = 1024
MIN_TTL_SECONDS = 60

ValueType = Literal["text", "json", "bytes", "arrayBuffer"]
_Entry = tuple[bytes, "float | None", "Any"]  # value, absolute expiry (epoch s), metadata


class KVError(Exception):
    """A KV call broke a platform limit."""


class KVNamespace:
    def __init__(
        self,
        path: str | Path,
        *,
        clock: Callable[[], float] = time.time,
        cache_ttl: float = 60.0,
        cache_size: int = 10_000,
    ) -> None:
        self.path = str(path)
        if self.path != ":memory:":
            Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._clock = clock
        self._cache: TTLCache[str, _Entry | None] = TTLCache(
            maxsize=cache_size, ttl=cache_ttl, timer=clock
        )
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="kv")
        self._lock = threading.Lock()
        self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
        self._conn.execute("PRAGMA journal_mode=WAL")
        self._conn.execute("PRAGMA synchronous=NORMAL")
        self._conn.execute(
            "CREATE TABLE IF NOT EXISTS kv (key TEXT PRIMARY KEY, value BLOB NOT NULL,"
            " expiration REAL, metadata TEXT)"
        )

    # --- reads ----------------------------------------------------------------------------
    async def get(self, key: str, type: ValueType = "text") -> Any:
        entry = await self._entry(key)
        return None if entry is None else _decode(entry[0], type)

    async def get_with_metadata(self, key: str, type: ValueType = "text") -> dict[str, Any]:
        entry = await self._entry(key)
        if entry is None:
            return {"value": None, "metadata": None}
        return {"value": _decode(entry[0], type), "metadata": entry[2]}

    async def list(
        self, prefix: str = "", cursor: str | None = None, limit: int = 1000
    ) -> dict[str, Any]:
        """Keys in lexicographic order, ``limit`` at most (1..1000), paged by ``cursor``."""
        limit = max(1, min(int(limit), 1000))
        after = base64.urlsafe_b64decode(cursor.encode()).decode() if cursor else ""
        now = self._clock()
        rows = await self._run(
            self._query,
            "SELECT key, expiration, metadata FROM kv WHERE key >= ? AND key > ?"
            " AND (expiration IS NULL OR expiration > ?) ORDER BY key LIMIT ?",
            (prefix, after, now, limit + 1),
        )
        rows = [r for r in rows if r[0].startswith(prefix)]
        complete = len(rows) <= limit
        rows = rows[:limit]
        keys = []
        for name, expiration, metadata in rows:
            item: dict[str, Any] = {"name": name}
            if expiration is not None:
                item["expiration"] = int(expiration)
            if metadata is not None:
                item["metadata"] = json.loads(metadata)
            keys.append(item)
        result: dict[str, Any] = {"keys": keys, "list_complete": complete}
        if not complete:
            result["cursor"] = base64.urlsafe_b64encode(rows[-1][0].encode()).decode()
        return result

    # --- writes ---------------------------------------------------------------------------
    async def put(
        self,
        key: str,
        value: str | bytes | bytearray,
        *,
        expiration_ttl: float | None = None,
        expiration: float | None = None,
        metadata: Any = None,
    ) -> None:
        _check_key(key)
        raw = value.encode() if isinstance(value, str) else bytes(value)
        if len(raw) > MAX_VALUE_BYTES:
            raise KVError(f"value larger than {MAX_VALUE_BYTES} bytes")
        meta_json = None if metadata is None else json.dumps(metadata)
        if meta_json is not None and len(meta_json.encode()) > MAX_METADATA_BYTES:
            raise KVError(f"metadata larger than {MAX_METADATA_BYTES} bytes")
        if expiration_ttl is not None:
            if expiration_ttl < MIN_TTL_SECONDS:
                log.warning(
                    "KV put %r with expiration_ttl=%s: the platform requires at least %ss",
                    key, expiration_ttl, MIN_TTL_SECONDS,
                )
            expiration = self._clock() + expiration_ttl
        await self._run(
            self._write,
            "INSERT OR REPLACE INTO kv (key, value, expiration, metadata) VALUES (?, ?, ?, ?)",
            (key, raw, expiration, meta_json),
        )
        self._cache[key] = (raw, expiration, metadata)

    async def delete(self, key: str) -> None:
        _check_key(key)
        await self._run(self._write, "DELETE FROM kv WHERE key = ?", (key,))
        self._cache[key] = None

    def close(self) -> None:
        self._executor.shutdown(wait=True)
        self._conn.close()

    # --- internals ------------------------------------------------------------------------
    async def _entry(self, key: str) -> _Entry | None:
        _check_key(key)
        now = self._clock()
        if key in self._cache:
            entry = self._cache[key]
        else:
            rows = await self._run(
                self._query, "SELECT value, expiration, metadata FROM kv WHERE key = ?", (key,)
            )
            entry = None
            if rows:
                value, expiration, metadata = rows[0]
                entry = (bytes(value), expiration, None if metadata is None else json.loads(metadata))
            self._cache[key] = entry
        if entry is not None and entry[1] is not None and entry[1] <= now:
            return None
        return entry

    async def _run(self, fn: Callable[..., Any], *args: Any) -> Any:
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

    def _query(self, sql: str, params: tuple[Any, ...]) -> list[tuple[Any, ...]]:
        with self._lock:
            return self._conn.execute(sql, params).fetchall()

    def _write(self, sql: str, params: tuple[Any, ...]) -> None:
        with self._lock:
            self._conn.execute(sql, params)


def _check_key(key: str) -> None:
    if not key or len(key.encode()) > MAX_KEY_BYTES:
        raise KVError(f"KV keys must be 1 to {MAX_KEY_BYTES} bytes")


def _decode(raw: bytes, type: ValueType) -> Any:
    if type == "text":
        return raw.decode()
    if type == "json":
        return json.loads(raw)
    if type in ("bytes", "arrayBuffer"):
        return raw
    raise KVError(f"unknown KV value type {type!r}")
