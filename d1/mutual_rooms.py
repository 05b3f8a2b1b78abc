"""Rooms two users are both joined to, read from ``current_state``.

Spec: client-server API, "Mutual Rooms" module: the rooms "where both the authenticated
user and ``user_id`` have a membership of type ``join``", with ``count`` the total number of
such rooms even when one answer holds only a batch of them.
"""

from __future__ import annotations

from dataclasses import dataclass

from d1.database import D1Database

# Both users' join rows, matched by room: the first through the membership index, the
# second through the table's primary key (room_id, type, state_key).
_MUTUAL_JOINS = (
    " FROM current_state a JOIN current_state b"
    " ON b.room_id = a.room_id AND b.type = 'm.room.member' AND b.state_key = ?"
    " AND b.membership = 'join'"
    " WHERE a.type = 'm.room.member' AND a.state_key = ? AND a.membership = 'join'"
)


@dataclass(frozen=True)
class MutualRoomsPage:
    """One batch of mutual rooms: ``room_ids`` sorted, ``more`` when rooms sort after the
    last of them, ``count`` the total over every batch."""

    room_ids: list[str]
    more: bool
    count: int


async def mutual_joined_rooms(
    db: D1Database, user_id: str, other_user_id: str, after: str | None, limit: int
) -> MutualRoomsPage:
    """At most ``limit`` rooms both users are joined to, sorted by room ID, starting after
    ``after`` (None: from the first); the batch and the total come from one snapshot."""
    if limit < 1:
        raise ValueError("limit must be at least 1")
    page_sql = "SELECT a.room_id AS room_id" + _MUTUAL_JOINS
    params: list[str] = [other_user_id, user_id]
    if after is not None:
        page_sql += " AND a.room_id > ?"
        params.append(after)
    page_sql += " ORDER BY a.room_id LIMIT ?"
    page, total = await db.read_many([
        db.prepare(page_sql).bind(*params, limit + 1),
        db.prepare("SELECT COUNT(*) AS n" + _MUTUAL_JOINS).bind(other_user_id, user_id),
    ])
    room_ids = [str(row["room_id"]) for row in page.results]
    return MutualRoomsPage(room_ids[:limit], len(room_ids) > limit, int(total.results[0]["n"]))
