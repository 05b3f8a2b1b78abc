"""Applying a room's server ACL to requests from other servers.

Spec: server-server API "Server Access Control Lists (ACLs)": a server denied by a room's
``m.room.server_acl`` gets 403 ``M_FORBIDDEN`` from the room's federation endpoints
(make/send join, leave, knock, invite, state, state_ids, event_auth, backfill,
get_missing_events); in ``/send`` its PDUs for the room are refused one by one and its
typing and receipt EDUs for the room ignored. A room without the event allows everyone.
The decision itself is ``durable.server_acl.server_allowed_by_acl``.
"""

from __future__ import annotations

import json
from typing import Any

from durable.server_acl import server_allowed_by_acl
from workers.errors import forbidden


async def room_acl_content(env: Any, room_id: str) -> dict[str, Any] | None:
    """The content of the room's current ``m.room.server_acl``, or None without one."""
    row = await env.DB.prepare(
        "SELECT e.json FROM current_state c JOIN events e ON e.event_id = c.event_id"
        " WHERE c.room_id = ? AND c.type = 'm.room.server_acl' AND c.state_key = ''"
    ).bind(room_id).first()
    if row is None:
        return None
    content = json.loads(row["json"]).get("content")
    return content if isinstance(content, dict) else {}


async def server_allowed_in_room(env: Any, room_id: str, server_name: str) -> bool:
    """Whether the room's server ACL lets ``server_name`` in (True without an ACL)."""
    content = await room_acl_content(env, room_id)
    return content is None or server_allowed_by_acl(server_name, content)


async def require_server_allowed(env: Any, room_id: str, server_name: str) -> None:
    """403 ``M_FORBIDDEN`` when the room's server ACL denies ``server_name``."""
    if not await server_allowed_in_room(env, room_id, server_name):
        raise forbidden(f"Server {server_name} is denied by the server ACL of room {room_id}")
