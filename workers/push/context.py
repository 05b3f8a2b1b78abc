"""The room facts push conditions need, read from D1 for one event.

Spec: client-server API "Conditions": ``room_member_count`` counts the room's (joined)
members, ``contains_display_name`` uses the user's display name *in that room*, and
``sender_notification_permission`` compares the sender's power level with the power
levels' ``notifications`` object. All three are taken from the room state *after* the event
(its state group: for a message event that is the state it was sent in), so a late
evaluation of an old event sees the room as it was, not as it is now.

A ``PushContexts`` lives for one evaluation pass and memoizes per state group.
"""

from __future__ import annotations

import json
from typing import Any, Mapping

from durable.auth.power_levels import get_power_levels_content, user_power_level
from durable.events.event import Event
from workers.client.history import RoomReader, Row
from workers.push.conditions import PushContext

StateMap = Mapping[tuple[str, str], str]


class PushContexts:
    """Builds ``PushContext`` objects for (user, event row) pairs, memoized per state group."""

    def __init__(self, reader: RoomReader) -> None:
        self.reader = reader
        self._member_counts: dict[str, int] = {}
        self._levels: dict[str, tuple[Event | None, Event | None]] = {}
        self._current_groups: dict[str, str | None] = {}
        # Per state key: what depends only on the state (and the user or the sender).
        self._display_names: dict[tuple[str, str], Any] = {}
        self._sender_levels: dict[tuple[str, str], int | float] = {}
        self._notification_levels: dict[str, Any] = {}

    async def _state(self, row: Row) -> tuple[str, StateMap]:
        group = row.get("state_group")
        if group is not None:
            return group, await self.reader.group_state(group)
        return f"at:{row['room_id']}:{row['stream_ordering']}", await self.reader.state_after(row)

    async def _event(self, event_id: str | None) -> Event | None:
        if event_id is None:
            return None
        row = await self.reader.row(event_id)
        if row is None:
            return None
        version = await self.reader.room_version(row["room_id"])
        if version is None:
            return None
        return Event(json.loads(row["json"]), version, event_id)

    async def member_count(self, room_id: str, key: str, state: StateMap) -> int:
        """Joined members in ``state``. The room's current state group is counted from
        ``current_state`` (one indexed query); older groups from their member events."""
        if key in self._member_counts:
            return self._member_counts[key]
        db = self.reader.db
        if room_id not in self._current_groups:
            # The current group and its member count, in one read of one snapshot.
            group, joined = await db.read_many([
                db.prepare("SELECT state_group FROM rooms WHERE room_id = ?").bind(room_id),
                db.prepare(
                    "SELECT COUNT(*) AS n FROM current_state WHERE room_id = ?"
                    " AND type = 'm.room.member' AND membership = 'join'"
                ).bind(room_id),
            ])
            current = group.results[0]["state_group"] if group.results else None
            self._current_groups[room_id] = current
            if current is not None:
                self._member_counts[current] = int(joined.results[0]["n"] or 0) if joined.results else 0
            if key in self._member_counts:
                return self._member_counts[key]
        # An older group: count the joins among its member events.
        member_ids = [e for (t, _), e in state.items() if t == "m.room.member"]
        rows = await self.reader.rows(member_ids)
        count = sum(1 for r in rows.values() if r.get("membership") == "join")
        self._member_counts[key] = count
        return count

    async def _power_events(self, key: str, state: StateMap) -> tuple[Event | None, Event | None]:
        if key not in self._levels:
            power_levels_id = state.get(("m.room.power_levels", ""))
            create_id = state.get(("m.room.create", ""))
            # Both rows in one read; _event then finds them loaded.
            await self.reader.rows([e for e in (power_levels_id, create_id) if e is not None])
            self._levels[key] = (await self._event(power_levels_id), await self._event(create_id))
        return self._levels[key]

    async def context_for(self, user_id: str, row: Row) -> PushContext:
        key, state = await self._state(row)
        if (key, user_id) not in self._display_names:
            member = await self.reader.content_of(state.get(("m.room.member", user_id)))
            self._display_names[(key, user_id)] = member.get("displayname")
        display_name = self._display_names[(key, user_id)]
        sender = row["sender"]
        if (key, sender) not in self._sender_levels or key not in self._notification_levels:
            power_levels, create = await self._power_events(key, state)
            if create is not None:
                self._sender_levels[(key, sender)] = user_power_level(sender, power_levels, create)
            else:
                self._sender_levels[(key, sender)] = 0
            self._notification_levels[key] = get_power_levels_content(power_levels, create)["notifications"]
        return PushContext(
            user_id=user_id,
            display_name=display_name if isinstance(display_name, str) else None,
            member_count=await self.member_count(row["room_id"], key, state),
            sender_power_level=self._sender_levels[(key, sender)],
            notification_levels=self._notification_levels[key],
        )
