"""Wakes waiting long-polls (``/sync?timeout=``) when something they watch changes.

Keys are room IDs and user IDs. Writers call ``notify(keys)`` after they commit; a sync
takes ``token = notifier.position()`` *before* it reads D1, and if it found nothing,
``await notifier.wait(keys, token, timeout)`` returns at once when anything on its keys was
notified after that position, so a change committed between the read and the wait is not
missed. No polling loop: waiters sleep on futures.

This is the local runtime's binding (``env.NOTIFIER``). On an edge host the same role is
played by an actor per user that sync requests wait on.
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from typing import Iterable


class _Closed(Exception):
    """Ends a wait because the notifier was closed."""


class Notifier:
    def __init__(self) -> None:
        self._position = 0
        self._last: dict[str, int] = {}
        self._waiters: dict[str, set[asyncio.Future[None]]] = defaultdict(set)
        self._closed = False

    @property
    def closed(self) -> bool:
        return self._closed

    def close(self) -> None:
        """The server is shutting down: every waiting long-poll returns now (as if its
        timeout had passed), and later waits do not wait, so that the listeners can finish
        their requests at once instead of holding shutdown for a long-poll's timeout."""
        self._closed = True
        waiters, self._waiters = self._waiters, defaultdict(set)
        for futures in waiters.values():
            for future in futures:
                if not future.done():
                    future.set_exception(_Closed())

    def position(self) -> int:
        return self._position

    def notify(self, keys: Iterable[str]) -> None:
        self._position += 1
        for key in keys:
            self._last[key] = self._position
            for future in self._waiters.pop(key, ()):
                if not future.done():
                    future.set_result(None)

    async def wait(self, keys: Iterable[str], since: int, timeout: float) -> bool:
        """True if any key was notified after ``since`` (now or within ``timeout`` seconds)."""
        keys = list(keys)
        if any(self._last.get(key, 0) > since for key in keys):
            return True
        if timeout <= 0 or self._closed:
            return False
        future: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        for key in keys:
            self._waiters[key].add(future)
        try:
            await asyncio.wait_for(future, timeout)
            return True
        except (asyncio.TimeoutError, _Closed):
            return False
        finally:
            for key in keys:
                waiters = self._waiters.get(key)
                if waiters is not None:
                    waiters.discard(future)
                    if not waiters:
                        self._waiters.pop(key, None)
