"""How workers reach rooms: the room actor's stub, and room IDs from IDs or aliases."""

from __future__ import annotations

from typing import Any

from d1.events import room_version_of
from durable.room_versions import RoomVersion
from workers.errors import Codes, MatrixError


def room_stub(env: Any, room_id: str) -> Any:
    """The room's actor (one per room ID)."""
    return env.ROOMS.get(env.ROOMS.id_from_name(room_id))


async def require_room(env: Any, room_id: str) -> RoomVersion:
    """The room's version, or 404 M_NOT_FOUND for a room this server does not know."""
    if not isinstance(room_id, str) or not room_id.startswith("!"):
        raise MatrixError(400, Codes.INVALID_PARAM, f"{room_id!r} is not a room ID")
    cache = getattr(env, "ROOM_VERSIONS", None)
    version = None if cache is None else cache.get(room_id)
    if version is None:
        # A room's version never changes and rooms are never deleted: a found version is
        # cached for good (an unknown room is not, it may be created next).
        generation = 0 if cache is None else cache.generation()
        version = await room_version_of(env.DB, room_id)
        if version is None:
            raise MatrixError(404, Codes.NOT_FOUND, f"Unknown room {room_id}")
        if cache is not None:
            cache.put(room_id, version, generation)
    return version


async def resolve_room_id_or_alias(env: Any, room_id_or_alias: str) -> str:
    """A room ID from ``!room`` or ``#alias:server`` (local aliases)."""
    if room_id_or_alias.startswith("!"):
        return room_id_or_alias
    if room_id_or_alias.startswith("#"):
        room_id = await env.DB.prepare("SELECT room_id FROM room_aliases WHERE alias = ?").bind(
            room_id_or_alias
        ).first("room_id")
        if room_id is None:
            raise MatrixError(404, Codes.NOT_FOUND, f"Room alias {room_id_or_alias} not found")
        return room_id
    raise MatrixError(400, Codes.INVALID_PARAM, f"{room_id_or_alias!r} is neither a room ID nor an alias")
