"""The presence actor: the single writer of one user's presence (a Durable Object per user
ID, binding ``PRESENCE``), for local users and for remote users whose presence their server
sends us.

Spec: client-server API module "Presence" (and the ``m.presence`` EDU of the server-server
API). The presence row lives in D1 (``presence``); this actor changes it when the user syncs,
acts or sets presence, and keeps an alarm at the next deadline of the rules in
durable/presence_rules.py: the sync timeout (then ``offline``) and the idle time (then
``unavailable``). Its own storage keeps ``online_until`` (the sync deadline) and
``source`` (why the state is what it is). Every change takes a new 'presence' position,
wakes the syncs that see the user and goes to the servers sharing a room with them, like
any other presence change. While the user is not offline, the alarm also comes at the
federation ping: their presence is sent again, unchanged, a ping interval after it was
last sent (``federated_ts``), so that other servers do not time it out.

For a remote user (server-server API "Presence": the ``m.presence`` EDUs of their server),
``remote_update`` stores what their server says and ``updated_ts``, when it said it; the
alarm comes at the federation timeout after that, and with no newer update by then the
user goes ``offline``. Such a change wakes the syncs that see the user like any other, but
is never sent over federation: this server does not speak for the user.

Alarms are persisted by the runtime, so a restart loses no deadline.
"""

from __future__ import annotations

import time
from typing import Any

from d1 import ephemeral as ephemeral_db
from durable import presence_rules as rules
from durable.base import DurableObject, DurableObjectState
from workers.client.ephemeral import notify_presence, write_presence
from workers.federation import e2ee_out

JsonDict = dict[str, Any]


class PresenceActor(DurableObject):
    def __init__(self, ctx: DurableObjectState, env: Any) -> None:
        super().__init__(ctx, env)
        if ctx.id.name is None:
            raise RuntimeError("presence actors are addressed by user ID (id_from_name)")
        self.user_id: str = ctx.id.name
        self.local = self.user_id.partition(":")[2] == env.config.server_name
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

    async def _federated_ts(self) -> int:
        return int(await self.ctx.storage.get("federated_ts") or 0)

    async def _write(
        self, state: str, source: str, status_msg: str | None, last_active_ts: int,
        before: JsonDict | None,
    ) -> None:
        """Store a change of a local user's presence (``before``: the row it replaces);
        write_presence sends it to other servers when state or message differ."""
        await self.ctx.storage.put("source", source)
        if before is None or (before["state"], before["status_msg"]) != (state, status_msg):
            await self.ctx.storage.put("federated_ts", self._now_ms())
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
            await self._write(state, change[1], row["status_msg"] if row else None, last_active, row)
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
            await self._write(state, change[1], row["status_msg"], now, row)
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
        row = await ephemeral_db.get_presence(self.env.DB, self.user_id)
        await self._write(state, rules.EXPLICIT, status_msg, now, row)
        await self._arm(state, now, until)

    async def status(self) -> JsonDict:
        """The actor's timers, for operators and tests."""
        return {
            "online_until": await self._online_until(),
            "source": await self._source(),
            "alarm_ms": await self.ctx.storage.get_alarm(),
            "federated_ts": await self.ctx.storage.get("federated_ts"),
            "updated_ts": await self.ctx.storage.get("updated_ts"),
        }

    async def remote_update(self, state: str, status_msg: str | None, last_active_ts: int) -> None:
        """What the server of a remote user says of them (an ``m.presence`` update), received
        now. A change (of state, message or whether they are currently active) becomes a
        presence change seen by our users; a repeat only moves the last active time. Either
        way the timeout starts again from now."""
        if self.local:
            raise RuntimeError(f"{self.user_id} is ours: its presence is not set over federation")
        now = self._now_ms()
        db = self.env.DB
        await self.ctx.storage.put("updated_ts", now)
        row = await ephemeral_db.get_presence(db, self.user_id)
        new = {"state": state, "status_msg": status_msg, "last_active_ts": last_active_ts}
        if row is None or _seen_as(row, now) != _seen_as(new, now):
            await db.batch(ephemeral_db.put_presence(db, self.user_id, state, status_msg, last_active_ts))
            await notify_presence(self.env, self.user_id)
        else:
            await ephemeral_db.touch_presence(db, self.user_id, last_active_ts)
        await self._set_alarm(rules.remote_deadline(state, now, self.timers))

    async def alarm(self) -> None:
        if not self.local:
            await self._remote_alarm()
            return
        now = self._now_ms()
        row = await ephemeral_db.get_presence(self.env.DB, self.user_id)
        if row is None:
            return
        state, last_active = row["state"], int(row["last_active_ts"])
        online_until = await self._online_until()
        change = rules.on_timer(state, last_active, online_until, now, self.timers)
        if change is not None:
            state = change[0]
            await self._write(state, change[1], row["status_msg"], last_active, row)
        elif rules.ping_due(state, await self._federated_ts(), now, self.timers):
            await self.ctx.storage.put("federated_ts", now)
            await e2ee_out.presence_ping(self.env, self.user_id, row)
        await self._arm(state, last_active, online_until)

    async def _remote_alarm(self) -> None:
        db = self.env.DB
        row = await ephemeral_db.get_presence(db, self.user_id)
        if row is None:
            return
        updated = int(await self.ctx.storage.get("updated_ts") or 0)
        change = rules.on_remote_timer(row["state"], updated, self._now_ms(), self.timers)
        state = row["state"]
        if change is not None:
            state = change[0]
            await db.batch(ephemeral_db.put_presence(
                db, self.user_id, state, row["status_msg"], int(row["last_active_ts"])
            ))
            await notify_presence(self.env, self.user_id)
        await self._set_alarm(rules.remote_deadline(state, updated, self.timers))

    async def _arm(self, state: str, last_active_ts: int, online_until: int) -> None:
        deadlines = [
            rules.next_deadline(state, last_active_ts, online_until, self.timers),
            rules.next_ping(state, await self._federated_ts(), self.timers),
        ]
        await self._set_alarm(min((d for d in deadlines if d is not None), default=None))

    async def _set_alarm(self, deadline: int | None) -> None:
        storage = self.ctx.storage
        if deadline is not None:
            if await storage.get_alarm() != deadline:
                await storage.set_alarm(deadline)
        elif await storage.get_alarm() is not None:
            await storage.delete_alarm()


def _seen_as(row: JsonDict, now: int) -> tuple[str, str | None, bool]:
    """What our users' clients show of a presence: state, message and whether the user is
    currently active."""
    content = ephemeral_db.presence_content(row, now)
    return (row["state"], row["status_msg"], content["currently_active"])
