"""The presence actor: the single writer of one local user's presence (a Durable Object per
user ID, binding ``PRESENCE``).

Spec: client-server API module "Presence" (and the ``m.presence`` EDU of the server-server
API). The presence row lives in D1 (``presence``); this actor changes it when the user syncs,
acts or sets presence, and keeps an alarm at the next deadline of the rules in
durable/presence_rules.py: the sync timeout (then ``offline``) and the idle time (then
``unavailable``). Its own storage keeps ``online_until`` (the sync deadline) and
``source`` (why the state is what it is). Every change takes a new 'presence' position,
wakes the syncs that see the user and goes to the servers sharing a room with them, like
any other presence change. Alarms are persisted by the runtime, so a restart loses no
deadline.
"""

from __future__ import annotations

import time
from typing import Any

from d1 import ephemeral as ephemeral_db
from durable import presence_rules as rules
from durable.base import DurableObject, DurableObjectState
from workers.client.ephemeral import write_presence

JsonDict = dict[str, Any]


class PresenceActor(DurableObject):
    def __init__(self, ctx: DurableObjectState, env: Any) -> None:
        super().__init__(ctx, env)
        if ctx.id.name is None:
            raise RuntimeError("presence actors are addressed by user ID (id_from_name)")
        self.user_id: str = ctx.id.name
        self.timers = rules.timers_from_config(env.config)

    def _now_ms(self) -> int:
        return int(time.time() * 1000)

    async def _source(self) -> str | None:
        source = await self.ctx.storage.get("source")
        return source if isinstance(source, str) else None

    async def _online_until(self) -> int:
        return int(await self.ctx.storage.get("online_until") or 0)

    async def _extend(self, until: int) -> int:
        online_until = max(await self._online_until(), until)
        await self.ctx.storage.put("online_until", online_until)
        return online_until

    async def _write(self, state: str, source: str, status_msg: str | None, last_active_ts: int) -> None:
        await self.ctx.storage.put("source", source)
        await write_presence(self.env, self.user_id, state, status_msg, last_active_ts)

    async def sync(self, requested: str, online_until: int) -> str | None:
        """A sync with ``set_presence`` ``requested`` (online or unavailable) keeps the user
        online until ``online_until`` (ms) at least. Returns the state after it."""
        now = self._now_ms()
        until = await self._extend(online_until)
        row = await ephemeral_db.get_presence(self.env.DB, self.user_id)
        state = row["state"] if row is not None else None
        change = rules.on_sync(state, await self._source(), requested)
        last_active = int(row["last_active_ts"]) if row is not None else now
        if change is not None:
            state = change[0]
            # Coming online counts as activity; other changes keep the last active time.
            if state == rules.ONLINE:
                last_active = now
            await self._write(state, change[1], row["status_msg"] if row else None, last_active)
        if state is not None:
            await self._arm(state, last_active, until)
        return state

    async def activity(self) -> None:
        """The user did something (sent, read, typed): the last active time moves to now
        and an idle ``unavailable`` ends."""
        now = self._now_ms()
        row = await ephemeral_db.get_presence(self.env.DB, self.user_id)
        if row is None:
            return
        change = rules.on_activity(row["state"], await self._source())
        state = row["state"]
        if change is not None:
            state = change[0]
            await self._write(state, change[1], row["status_msg"], now)
        else:
            await ephemeral_db.touch_presence(self.env.DB, self.user_id, now)
        await self._arm(state, now, await self._online_until())

    async def set_presence(self, state: str, status_msg: str | None) -> None:
        """``PUT /presence/{userId}/status``: the user's own choice, which is also activity
        and (unless ``offline``) keeps them online for one sync timeout."""
        now = self._now_ms()
        until = await self._online_until()
        if state != rules.OFFLINE:
            until = await self._extend(now + self.timers.sync_timeout_ms)
        await self._write(state, rules.EXPLICIT, status_msg, now)
        await self._arm(state, now, until)

    async def status(self) -> JsonDict:
        """The actor's timers, for operators and tests."""
        return {
            "online_until": await self._online_until(),
            "source": await self._source(),
            "alarm_ms": await self.ctx.storage.get_alarm(),
        }

    async def alarm(self) -> None:
        now = self._now_ms()
        row = await ephemeral_db.get_presence(self.env.DB, self.user_id)
        if row is None:
            return
        state, last_active = row["state"], int(row["last_active_ts"])
        online_until = await self._online_until()
        change = rules.on_timer(state, last_active, online_until, now, self.timers)
        if change is not None:
            state = change[0]
            await self._write(state, change[1], row["status_msg"], last_active)
        await self._arm(state, last_active, online_until)

    async def _arm(self, state: str, last_active_ts: int, online_until: int) -> None:
        storage = self.ctx.storage
        deadline = rules.next_deadline(state, last_active_ts, online_until, self.timers)
        if deadline is not None:
            if await storage.get_alarm() != deadline:
                await storage.set_alarm(deadline)
        elif await storage.get_alarm() is not None:
            await storage.delete_alarm()
