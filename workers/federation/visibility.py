"""Which events another server may see, for the federation reads that serve room history:
``/event``, ``/backfill`` and ``/get_missing_events``.

Spec: the server-server API serves history to servers on behalf of their users, so the
client-server rules of "Room History Visibility" ("Server behaviour") apply with the server
in the user's place, using the state *at* each event (as Synapse's
``filter_events_for_server`` does):

1. ``world_readable``: visible.
2. One of the server's users was joined: visible.
3. ``shared`` and the server joined the room at any point after the event (its users are
   joined now, or one joined later): visible.
4. ``invited`` and one of its users was invited: visible.
5. Otherwise not visible.

An event the server may not see is served in its redacted form (the redaction algorithm of
the room version, signatures kept), so the server can still link and authorise the DAG but
reads no content, as Synapse serves it. As for users, an ``m.room.history_visibility`` event
and the server's own users' member events are visible if the state before *or* after them
allows. Outliers (no state known at them) are visible, as Synapse treats them; an event
redacted here is served redacted to everyone.

``/state``, ``/state_ids`` and ``/event_auth`` are not filtered (nor are they by Synapse):
they serve state events, which the server needs whole to authorise events and which it got
whole at its join, and those endpoints are only for servers in the room.
"""

from __future__ import annotations

import json
import time
from typing import Any, Iterable, Mapping, Sequence

from durable.events import redact
from workers.client.history import TIMELINE_SQL, RoomReader, Row
from workers.client.visibility import HISTORY_VISIBILITY, may_see, normalize_visibility
from workers.federation.server.common import server_in_room

MEMBER = "m.room.member"


def server_of(user_id: str) -> str:
    return user_id.split(":", 1)[1] if ":" in user_id else ""


def server_membership(memberships: Iterable[str | None]) -> str | None:
    """The membership a server has through its users' memberships: ``join`` if any is
    joined, else ``invite`` if any is invited, else None (no rule allows by the others)."""
    found = set(memberships)
    if "join" in found:
        return "join"
    return "invite" if "invite" in found else None


class ServerView:
    """One request's visibility checks for ``server_name`` (memoized per room)."""

    def __init__(self, env: Any, server_name: str) -> None:
        self.env = env
        self.server_name = server_name
        self.reader = RoomReader(env.DB, user_id="", device_id=None, now_ms=int(time.time() * 1000))
        self._in_room: dict[str, bool] = {}
        self._last_join: dict[str, int] = {}
        self._memberships: dict[int, str | None] = {}

    async def _joined_later(self, room_id: str, position: int) -> bool:
        """Whether the server joined the room after ``position``: its users are joined
        now, or one of them joined later."""
        if room_id not in self._in_room:
            self._in_room[room_id] = await server_in_room(self.env, room_id, self.server_name)
        if self._in_room[room_id]:
            return True
        if room_id not in self._last_join:
            value = await self.env.DB.prepare(
                "SELECT MAX(stream_ordering) AS s FROM events WHERE room_id = ? AND type = ?"
                f" AND membership = 'join' AND state_key LIKE ? ESCAPE '\\' AND {TIMELINE_SQL}"
            ).bind(room_id, MEMBER, "%:" + _like_escaped(self.server_name)).first("s")
            self._last_join[room_id] = int(value) if value is not None else -(2**62)
        return self._last_join[room_id] > position

    async def _visibility_at(self, state: Mapping[tuple[str, str], str]) -> str:
        content = await self.reader.content_of(state.get(HISTORY_VISIBILITY))
        return normalize_visibility(content.get("history_visibility"))

    async def _membership_at(self, state: Mapping[tuple[str, str], str]) -> str | None:
        """The server's membership (``server_membership``) in ``state``; memoized per state
        map (the reader keeps each map alive for the request, so its id is not reused)."""
        if id(state) not in self._memberships:
            reader = self.reader
            ours = [e for (t, k), e in state.items() if t == MEMBER and server_of(k) == self.server_name]
            await reader.rows(ours)
            found = []
            for event_id in ours:
                membership = (await reader.content_of(event_id)).get("membership")
                found.append(membership if isinstance(membership, str) else None)
            self._memberships[id(state)] = server_membership(found)
        return self._memberships[id(state)]

    async def may_see(self, row: Row) -> bool:
        """The rules above for one stored event (the server's membership is read only when
        the visibility alone does not decide)."""
        if row["outlier"]:
            return True
        reader = self.reader
        states = [await reader.state_after(row)]
        key = (row["type"], row["state_key"]) if row.get("state_key") is not None else None
        if key == HISTORY_VISIBILITY or (key is not None and key[0] == MEMBER
                                        and server_of(key[1]) == self.server_name):
            states.append(await reader.state_before(row))
        for state in states:
            visibility = await self._visibility_at(state)
            joined_later = visibility == "shared" and await self._joined_later(
                row["room_id"], row["stream_ordering"])
            decided = visibility == "world_readable" or joined_later
            membership = None if decided else await self._membership_at(state)
            if may_see(visibility, membership, joined_later):
                return True
        return False

    async def pdus(self, rows: Sequence[Row]) -> list[dict[str, Any]]:
        """The PDUs of ``rows`` as this server may have them: whole, or redacted."""
        out = []
        for row in rows:
            pdu: dict[str, Any] = json.loads(row["json"])
            if row["redacted_by"] is not None or not await self.may_see(row):
                version = await self.reader.room_version(row["room_id"])
                if version is None:
                    continue  # cannot be redacted, so not served
                pdu = redact(pdu, version)
            out.append(pdu)
        return out


def _like_escaped(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
