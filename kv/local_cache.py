"""An in-process cache for hot lookups that a worker would otherwise read from D1 on every
request (a token's owner, a room's version). A cache only: D1 stays the truth, and losing
an entry costs one read.

Two guards keep it from serving what D1 no longer holds:

- a time to live, after which an entry is read from D1 again. It bounds how long a change
  made by *another* process (another isolate on an edge host), which this process is never
  told about, can go unseen;
- ``invalidate(tag)`` for the changes *this* process makes (a logout drops the user's
  tokens at once), with a generation check on inserts: a reader notes ``generation()``
  before its D1 read and its ``put`` is dropped if anything was invalidated since, so a read
  that raced a change cannot bring the old value back.

Entries past ``maxsize`` push out the oldest insert.
"""

from __future__ import annotations

import time
from typing import Callable, Generic, Hashable, TypeVar

K = TypeVar("K", bound=Hashable)
V = TypeVar("V")


class LocalCache(Generic[K, V]):
    def __init__(
        self,
        *,
        ttl: float | None,
        maxsize: int = 50_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        """``ttl`` in seconds (None: entries live until invalidated or pushed out)."""
        self._ttl = ttl
        self._maxsize = maxsize
        self._clock = clock
        self._entries: dict[K, tuple[V, float | None, Hashable | None]] = {}
        self._tagged: dict[Hashable, set[K]] = {}
        self._generation = 0

    def __len__(self) -> int:
        return len(self._entries)

    def get(self, key: K) -> V | None:
        entry = self._entries.get(key)
        if entry is None:
            return None
        value, expires, _ = entry
        if expires is not None and expires <= self._clock():
            self._drop(key)
            return None
        return value

    def generation(self) -> int:
        """Note this before reading what ``put`` will store."""
        return self._generation

    def put(self, key: K, value: V, generation: int, tag: Hashable | None = None) -> bool:
        """Store ``value`` unless something was invalidated after ``generation`` was taken;
        ``tag`` groups entries for ``invalidate``. True if stored."""
        if generation != self._generation:
            return False
        self._drop(key)
        expires = None if self._ttl is None else self._clock() + self._ttl
        self._entries[key] = (value, expires, tag)
        if tag is not None:
            self._tagged.setdefault(tag, set()).add(key)
        while len(self._entries) > self._maxsize:
            self._drop(next(iter(self._entries)))
        return True

    def invalidate(self, tag: Hashable) -> None:
        """Drop every entry stored with ``tag``, and refuse puts of reads begun before now."""
        self._generation += 1
        for key in self._tagged.pop(tag, ()):
            self._entries.pop(key, None)

    def clear(self) -> None:
        self._generation += 1
        self._entries.clear()
        self._tagged.clear()

    def _drop(self, key: K) -> None:
        entry = self._entries.pop(key, None)
        if entry is not None and entry[2] is not None:
            keys = self._tagged.get(entry[2])
            if keys is not None:
                keys.discard(key)
                if not keys:
                    del self._tagged[entry[2]]
