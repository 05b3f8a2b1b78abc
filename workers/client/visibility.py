"""Which events a user may see: the history visibility rules.

Spec: client-server API, module "Room History Visibility", "Server behaviour". The rules use
the room state *at* the event:

1. ``world_readable`` visibility: allow.
2. The user's membership was ``join``: allow.
3. ``shared`` visibility and the user joined the room at any point after the event: allow.
4. The user's membership was ``invite`` and visibility ``invited``: allow.
5. Otherwise deny.

An absent or unknown visibility counts as ``shared``. For ``m.room.history_visibility``
events, and for the user's own ``m.room.member`` events, the user may see the event if the
rules allow it with the state before *or* after the event.
"""

from __future__ import annotations

from typing import Mapping, Sequence

from workers.client.history import TIMELINE_SQL, RoomReader, Row

VISIBILITIES = ("world_readable", "shared", "invited", "joined")
HISTORY_VISIBILITY = ("m.room.history_visibility", "")


def normalize_visibility(value: object) -> str:
    """An absent or unknown ``history_visibility`` is ``shared``."""
    return value if isinstance(value, str) and value in VISIBILITIES else "shared"


def may_see(visibility: str, membership: str | None, joined_later: bool) -> bool:
    """The five rules, for one (visibility, membership) pair at an event."""
    if visibility == "world_readable":
        return True
    if membership == "join":
        return True
    if visibility == "shared" and joined_later:
        return True
    return visibility == "invited" and membership == "invite"


async def last_join_position(reader: RoomReader, room_id: str, user_id: str) -> int:
    """The stream ordering of the user's latest join to the room (0 if never joined)."""
    value = await reader.db.prepare(
        "SELECT MAX(stream_ordering) AS s FROM events WHERE room_id = ?"
        " AND type = 'm.room.member' AND state_key = ? AND membership = 'join'"
        f" AND {TIMELINE_SQL}"
    ).bind(room_id, user_id).first("s")
    return int(value or 0)


async def _pair_at(
    reader: RoomReader, state: Mapping[tuple[str, str], str], user_id: str
) -> tuple[str, str | None]:
    visibility = (await reader.content_of(state.get(HISTORY_VISIBILITY))).get("history_visibility")
    membership = (await reader.content_of(state.get(("m.room.member", user_id)))).get("membership")
    return (
        normalize_visibility(visibility),
        membership if isinstance(membership, str) else None,
    )


async def filter_visible(reader: RoomReader, rows: Sequence[Row], user_id: str) -> list[Row]:
    """The rows ``user_id`` may see, in their order."""
    joins: dict[str, int] = {}
    out: list[Row] = []
    for row in rows:
        room_id = row["room_id"]
        if room_id not in joins:
            joins[room_id] = await last_join_position(reader, room_id, user_id)
        joined_later = joins[room_id] > row["stream_ordering"]
        pairs = [await _pair_at(reader, await reader.state_after(row), user_id)]
        key = (row["type"], row["state_key"]) if row.get("state_key") is not None else None
        if key == HISTORY_VISIBILITY or key == ("m.room.member", user_id):
            pairs.append(await _pair_at(reader, await reader.state_before(row), user_id))
        if any(may_see(v, m, joined_later) for v, m in pairs):
            out.append(row)
    return out
