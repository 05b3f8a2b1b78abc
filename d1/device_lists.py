"""Device-list changes: who must re-download whose device keys.

Spec: client-server API "Tracking the device list for a user": a user's device list
changes when a device's identity keys are uploaded, a device is deleted or their
cross-signing keys change; a syncing user hears about it (``device_lists.changed``) when
they share a room with that user, and hears in ``device_lists.left`` about users with whom
they no longer share any room. Joining a room shares it with its members, so membership
changes (read from the events stream) count too.

Each change takes the next 'device_lists' position; ``device_list_changes`` holds each
user's latest one.
"""

from __future__ import annotations

from typing import Iterable

from d1.database import D1Database, PreparedStatement
from d1.streams import POSITION, advance

STREAM = "device_lists"
_CHUNK = 90


def mark_changed(db: D1Database, user_ids: Iterable[str]) -> list[PreparedStatement]:
    """Statements (for one batch) recording a device-list change of each user."""
    users = sorted(set(user_ids))
    if not users:
        return []
    return [advance(db, STREAM)] + [
        db.prepare(
            "INSERT INTO device_list_changes (user_id, stream_id) VALUES (?, " + POSITION + ")"
            " ON CONFLICT (user_id) DO UPDATE SET stream_id = excluded.stream_id"
        ).bind(user_id, STREAM)
        for user_id in users
    ]


async def changed_between(db: D1Database, since: int, upto: int) -> set[str]:
    """Users whose latest device-list change is in (since, upto]."""
    rows = (
        await db.prepare(
            "SELECT user_id FROM device_list_changes WHERE stream_id > ? AND stream_id <= ?"
        ).bind(since, upto).all()
    ).results
    return {r["user_id"] for r in rows}


async def joined_rooms(db: D1Database, user_id: str) -> list[str]:
    rows = (
        await db.prepare(
            "SELECT room_id FROM current_state WHERE type = 'm.room.member' AND state_key = ?"
            " AND membership = 'join'"
        ).bind(user_id).all()
    ).results
    return [r["room_id"] for r in rows]


async def joined_members(db: D1Database, room_ids: Iterable[str]) -> set[str]:
    rooms = list(room_ids)
    members: set[str] = set()
    for start in range(0, len(rooms), _CHUNK):
        chunk = rooms[start : start + _CHUNK]
        rows = (
            await db.prepare(
                "SELECT DISTINCT state_key FROM current_state WHERE type = 'm.room.member'"
                " AND membership = 'join' AND room_id IN (" + ",".join("?" * len(chunk)) + ")"
            ).bind(*chunk).all()
        ).results
        members.update(r["state_key"] for r in rows)
    return members


async def users_sharing_a_room(db: D1Database, user_id: str) -> set[str]:
    """Users joined to a room the user is joined to, the user included."""
    return await joined_members(db, await joined_rooms(db, user_id)) | {user_id}


async def _membership_events(
    db: D1Database, user_id: str, since_events: int, upto_events: int
) -> list[dict[str, str]]:
    """Accepted membership events in (since, upto] of the rooms the user has any
    membership in, each with ``prev_membership``: the membership of the member event it
    replaced in the room's state (None for the first)."""
    return (
        await db.prepare(
            "SELECT e.room_id, e.state_key, e.membership, (SELECT p.membership FROM events p"
            " WHERE p.event_id = json_extract(e.local_unsigned, '$.replaces_state')) AS prev_membership"
            " FROM events e"
            " WHERE e.type = 'm.room.member' AND e.stream_ordering > ? AND e.stream_ordering <= ?"
            " AND e.outlier = 0 AND e.soft_failed = 0 AND e.rejected_reason IS NULL"
            " AND e.room_id IN (SELECT room_id FROM current_state WHERE type = 'm.room.member'"
            " AND state_key = ?) ORDER BY e.stream_ordering"
        ).bind(since_events, upto_events, user_id).all()
    ).results


async def device_list_changes(
    db: D1Database,
    user_id: str,
    since_devices: int,
    upto_devices: int,
    since_events: int,
    upto_events: int,
) -> dict[str, list[str]]:
    """``{"changed": [...], "left": [...]}`` for a sync (or /keys/changes) from the positions
    ``since_*`` to ``upto_*`` of the device_lists and events streams.

    changed: users sharing a room with ``user_id`` now (the user included) whose device list
    changed in the window, or who came to share a room with them through a membership change
    in the window. left: users whose membership change (or the user's own leaving) in the
    window left them sharing no room with ``user_id``. Invites and knocks share nothing.
    """
    device_changes = (
        await changed_between(db, since_devices, upto_devices)
        if since_devices != upto_devices
        else set()
    )
    memberships = (
        await _membership_events(db, user_id, since_events, upto_events)
        if since_events != upto_events
        else []
    )
    if not device_changes and not memberships:
        return {"changed": [], "left": []}  # nothing in the window: who shares a room is moot
    sharing = await users_sharing_a_room(db, user_id)
    changed = device_changes & sharing
    # Only a change of whether someone is joined matters (not a profile change, an invite,
    # a knock or a rejected invite). The user's own joins share a room with its members,
    # their own leaves may share nothing more with them.
    touched: set[str] = set()
    own_rooms: set[str] = set()
    for row in memberships:
        if (row["membership"] == "join") == (row["prev_membership"] == "join"):
            continue
        if row["state_key"] == user_id:
            own_rooms.add(row["room_id"])
        else:
            touched.add(row["state_key"])
    if own_rooms:
        touched |= await joined_members(db, own_rooms)
    touched.discard(user_id)
    changed |= touched & sharing
    left = touched - sharing
    return {"changed": sorted(changed), "left": sorted(left)}
