"""The typing actor: the single writer of one room's typing notifications (a Durable Object
per room ID, binding ``TYPING``).

Spec: client-server API "Typing Notifications": a user is typing for ``timeout`` ms unless
they say they stopped earlier. The typers live in D1 (``typing``, with their expiry) so a
restart loses nothing; this actor changes them, takes a new 'typing' position whenever the
set of typers changes (a refresh of someone already typing takes none), and keeps an alarm
at the earliest expiry so that an expired typer is removed, and waiting syncs woken, on time
even if nobody calls again. When a local user's typing runs out, the other servers in the
room are told it stopped (workers.federation.e2ee_out).
"""

from __future__ import annotations

import time
from typing import Any

from d1.ephemeral import refresh_typing, set_typing_statements, typing_rows
from durable.base import DurableObject, DurableObjectState
from workers.federation import e2ee_out

# The longest a single typing notification lasts, whatever timeout the client asks for.
MAX_TIMEOUT_MS = 120_000


class TypingActor(DurableObject):
    def __init__(self, ctx: DurableObjectState, env: Any) -> None:
        super().__init__(ctx, env)
        if ctx.id.name is None:
            raise RuntimeError("typing actors are addressed by room ID (id_from_name)")
        self.room_id: str = ctx.id.name

    def _now_ms(self) -> int:
        return int(time.time() * 1000)

    async def set_typing(self, user_id: str, typing: bool, timeout_ms: int) -> None:
        """Start (for ``timeout_ms``, capped) or stop ``user_id`` typing in the room."""
        db = self.env.DB
        now = self._now_ms()
        rows = await typing_rows(db, self.room_id)
        expired = [u for u, expires in rows.items() if expires <= now]
        live = {u: expires for u, expires in rows.items() if expires > now}
        started: dict[str, int] = {}
        stopped = list(expired)
        if typing:
            expires = now + max(0, min(timeout_ms, MAX_TIMEOUT_MS))
            if user_id in live:
                live[user_id] = expires
            else:
                started[user_id] = expires
        elif user_id in live:
            del live[user_id]
            stopped.append(user_id)
        if started or stopped:
            await db.batch(set_typing_statements(db, self.room_id, started, stopped))
            self.env.NOTIFIER.notify([self.room_id])
        elif typing:
            await db.batch([refresh_typing(db, self.room_id, user_id, live[user_id])])
        await self._arm({**live, **started})

    async def typing_users(self) -> list[str]:
        """The users typing now."""
        now = self._now_ms()
        rows = await typing_rows(self.env.DB, self.room_id)
        return sorted(u for u, expires in rows.items() if expires > now)

    async def alarm(self) -> None:
        db = self.env.DB
        now = self._now_ms()
        rows = await typing_rows(db, self.room_id)
        expired = [u for u, expires in rows.items() if expires <= now]
        if expired:
            await db.batch(set_typing_statements(db, self.room_id, {}, expired))
            self.env.NOTIFIER.notify([self.room_id])
            for user_id in expired:
                if user_id.split(":", 1)[-1] == self.env.config.server_name:
                    await e2ee_out.typing_changed(self.env, self.room_id, user_id, False)
        await self._arm({u: e for u, e in rows.items() if e > now})

    async def _arm(self, live: dict[str, int]) -> None:
        storage = self.ctx.storage
        if live:
            await storage.set_alarm(min(live.values()))
        elif await storage.get_alarm() is not None:
            await storage.delete_alarm()
