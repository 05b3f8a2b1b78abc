"""Which servers share rooms with whom, read from ``current_state``: whom an EDU goes to,
and whether a remote user's data concerns any local user.

Spec: server-server API "EDUs", "Typing Notifications", "Presence", "Device Management":
ephemeral data goes to the servers in the room (or sharing a room with the user), and a
receiving server keeps only what its own users share a room with. A server's name is what
follows the first ``:`` of a user ID (localparts never hold a colon).
"""

from __future__ import annotations

from d1.database import D1Database

# The server part of current_state.state_key (a user ID for member events).
_SERVER = "substr(state_key, instr(state_key, ':') + 1)"


async def servers_in_room(db: D1Database, room_id: str) -> set[str]:
    """Servers with a joined member in the room."""
    rows = (
        await db.prepare(
            f"SELECT DISTINCT {_SERVER} AS server FROM current_state WHERE room_id = ?"
            " AND type = 'm.room.member' AND membership = 'join'"
        ).bind(room_id).all()
    ).results
    return {r["server"] for r in rows}


async def servers_sharing_rooms(db: D1Database, user_id: str) -> set[str]:
    """Servers with a joined member in any room ``user_id`` is joined to."""
    rows = (
        await db.prepare(
            f"SELECT DISTINCT {_SERVER} AS server FROM current_state WHERE type = 'm.room.member'"
            " AND membership = 'join' AND room_id IN (SELECT room_id FROM current_state"
            " WHERE type = 'm.room.member' AND membership = 'join' AND state_key = ?)"
        ).bind(user_id).all()
    ).results
    return {r["server"] for r in rows}


async def is_joined(db: D1Database, room_id: str, user_id: str) -> bool:
    row = await db.prepare(
        "SELECT 1 AS joined FROM current_state WHERE room_id = ? AND type = 'm.room.member'"
        " AND state_key = ? AND membership = 'join'"
    ).bind(room_id, user_id).first()
    return row is not None
