"""What the room federation endpoints share: room lookup, access checks, PDU loading."""

from __future__ import annotations

import json
from typing import Any, Sequence

from d1.events import get_event_rows, room_version_of
from durable.room_versions import RoomVersion
from workers.errors import Codes, MatrixError

FEDERATION_V1 = "/_matrix/federation/v1"
FEDERATION_V2 = "/_matrix/federation/v2"


async def known_room(env: Any, room_id: str) -> RoomVersion:
    version = await room_version_of(env.DB, room_id)
    if version is None:
        raise MatrixError(404, Codes.NOT_FOUND, f"Room {room_id} is not known to this server")
    return version


async def server_in_room(env: Any, room_id: str, server_name: str) -> bool:
    """Whether ``server_name`` has a joined member in the room's current state."""
    row = await env.DB.prepare(
        "SELECT 1 FROM current_state WHERE room_id = ? AND type = 'm.room.member'"
        " AND membership = 'join' AND state_key LIKE ? ESCAPE '\\' LIMIT 1"
    ).bind(room_id, "%:" + server_name.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")).first()
    return row is not None


async def world_readable(env: Any, room_id: str) -> bool:
    row = await env.DB.prepare(
        "SELECT json_extract(e.json, '$.content.history_visibility') AS v FROM current_state c"
        " JOIN events e ON e.event_id = c.event_id"
        " WHERE c.room_id = ? AND c.type = 'm.room.history_visibility' AND c.state_key = ''"
    ).bind(room_id).first()
    return row is not None and row["v"] == "world_readable"


async def require_server_in_room(env: Any, room_id: str, origin: str) -> RoomVersion:
    """The room's version, if ``origin`` may read it: it has a joined member, or the room is
    world readable; 403 M_FORBIDDEN otherwise (spec: servers only serve rooms to servers in
    them)."""
    version = await known_room(env, room_id)
    if not await server_in_room(env, room_id, origin) and not await world_readable(env, room_id):
        raise MatrixError(403, Codes.FORBIDDEN, f"{origin} is not in room {room_id}")
    return version


def federation_pdu(row: dict[str, Any]) -> dict[str, Any]:
    """A stored event as it goes over federation (the PDU, no local additions)."""
    pdu: dict[str, Any] = json.loads(row["json"])
    return pdu


async def pdus_for(env: Any, event_ids: Sequence[str], *, accepted_only: bool = True) -> list[dict[str, Any]]:
    """The PDUs of ``event_ids`` that we hold (rejected ones left out), in the given order."""
    rows = await get_event_rows(env.DB, list(event_ids))
    out = []
    for event_id in event_ids:
        row = rows.get(event_id)
        if row is None or (accepted_only and row["rejected_reason"] is not None):
            continue
        out.append(federation_pdu(row))
    return out
