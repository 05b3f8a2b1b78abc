"""Wakes the pusher actors when rooms of users with pushers change.

The room actor commits events and then notifies ``env.NOTIFIER`` with the room ID (and the
users a membership event concerns); it calls nothing of the push code. So the dispatcher
watches the notifier like a long-polling ``/sync`` does: it waits on the rooms that users
with pushers are joined to, those users' IDs, and ``PUSHERS_KEY`` (a pusher was set or
removed). When woken it reads which of those rooms got events since its last position and
calls ``process(position)`` on the pusher actor of each affected user. The notifier
position is taken before D1 is read, so a commit in between wakes it again at once. On
start every pusher actor is called once, so events committed while the server was down
are pushed too (each actor keeps its own position).

No polling: between changes the task sleeps on the notifier (a long wait, renewed).
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any

from d1 import pushers as pushers_db
from workers.push.pushers import PUSHERS_KEY

log = logging.getLogger(__name__)

WAIT_SECONDS = 300.0
ERROR_PAUSE_SECONDS = 1.0


class PushDispatcher:
    def __init__(self, env: Any) -> None:
        self.env = env
        self._task: asyncio.Task[None] | None = None
        self.position = 0

    def start(self) -> None:
        if self._task is None:
            self._task = asyncio.get_running_loop().create_task(self._run())

    async def stop(self) -> None:
        task, self._task = self._task, None
        if task is not None:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):  # it ends by being cancelled
                await task
        gateway = getattr(self.env, "push_gateway", None)
        if gateway is not None:
            self.env.push_gateway = None
            await gateway.close()

    async def _max_position(self) -> int:
        value = await self.env.DB.prepare(
            "SELECT COALESCE(MAX(stream_ordering), 0) AS p FROM events"
        ).first("p")
        return int(value or 0)

    async def _watched(self, users: list[str]) -> list[str]:
        """The notifier keys to wait on: the users, their joined rooms, pusher changes."""
        rooms: set[str] = set()
        for start in range(0, len(users), 90):
            part = users[start : start + 90]
            rows = (
                await self.env.DB.prepare(
                    "SELECT DISTINCT room_id FROM current_state WHERE type = 'm.room.member'"
                    f" AND membership = 'join' AND state_key IN ({','.join('?' * len(part))})"
                ).bind(*part).all()
            ).results
            rooms.update(r["room_id"] for r in rows)
        return [PUSHERS_KEY, *users, *sorted(rooms)]

    async def _affected(self, users: list[str], after: int, upto: int) -> list[str]:
        """Users with pushers joined to a room with events in (after, upto], or the target
        of a membership event there (an invite)."""
        wanted = set(users)
        rows = (
            await self.env.DB.prepare(
                "SELECT DISTINCT c.state_key AS user_id FROM events e JOIN current_state c"
                " ON c.room_id = e.room_id AND c.type = 'm.room.member' AND c.membership = 'join'"
                " WHERE e.stream_ordering > ? AND e.stream_ordering <= ?"
                " UNION SELECT state_key FROM events WHERE type = 'm.room.member'"
                " AND stream_ordering > ? AND stream_ordering <= ?"
            ).bind(after, upto, after, upto).all()
        ).results
        return sorted(r["user_id"] for r in rows if r["user_id"] in wanted)

    async def _kick(self, users: list[str], upto: int) -> None:
        for user_id in users:
            try:
                await self.env.PUSHERS.get_by_name(user_id).process(upto)
            except RuntimeError as exc:  # the namespace closed (shutdown)
                log.info("pusher of %s not woken: %s", user_id, exc)
                return
            except Exception:  # one user's failure must not stop the others' pushes
                log.exception("pusher of %s failed to process up to %d", user_id, upto)

    async def _run(self) -> None:
        notifier = self.env.NOTIFIER
        try:
            self.position = await self._max_position()
            await self._kick(await pushers_db.users_with_pushers(self.env.DB), self.position)
        except Exception:  # the loop below catches up from self.position
            log.exception("push dispatcher start-up catch-up failed")
        while not notifier.closed:  # closed: the server is shutting down
            try:
                token = notifier.position()
                users = await pushers_db.users_with_pushers(self.env.DB)
                latest = await self._max_position()
                if latest > self.position:
                    await self._kick(await self._affected(users, self.position, latest), latest)
                    self.position = latest
                await notifier.wait(await self._watched(users), token, WAIT_SECONDS)
            except asyncio.CancelledError:
                raise
            except Exception:  # keep pushing after a transient failure (logged)
                log.exception("push dispatcher iteration failed")
                await asyncio.sleep(ERROR_PAUSE_SECONDS)
