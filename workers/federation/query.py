"""Federation queries: ``GET /_matrix/federation/v1/query/profile`` and ``/query/directory``.

Spec: server-server API "Querying for information" (query.yaml). Both need an authenticated
request (X-Matrix). Profiles are served only for users of this server (400 otherwise, 404 for
an unknown user); with ``field`` only that field is returned, and unset fields are left out.
A directory query resolves one of our aliases to its room ID and the servers likely to be in
the room: us first, then the servers of the room's joined members.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from d1 import accounts as accounts_db
from durable.events.identifiers import server_name_of
from workers.errors import Codes, MatrixError, invalid_param, missing_param
from workers.federation.auth import require_server
from workers.routing import route

PROFILE_FIELDS = ("displayname", "avatar_url")


async def query_profile(request: Request, env: Any) -> dict[str, Any]:
    await require_server(request, env)
    user_id = request.query_params.get("user_id")
    if not user_id:
        raise missing_param("user_id is required")
    if server_name_of(user_id) != env.config.server_name:
        raise invalid_param("User is not hosted on this server")
    field = request.query_params.get("field")
    profile = await accounts_db.get_profile(env.DB, user_id)
    if profile is None:
        raise MatrixError(404, Codes.NOT_FOUND, "Profile was not found")
    present = {k: v for k, v in profile.items() if k in PROFILE_FIELDS and v is not None}
    if field is not None:
        return {field: present[field]} if field in present else {}
    return present


async def room_servers(env: Any, room_id: str) -> list[str]:
    """Us, then every other server with a joined member in the room's current state."""
    rows = (
        await env.DB.prepare(
            "SELECT state_key FROM current_state WHERE room_id = ? AND type = 'm.room.member'"
            " AND membership = 'join'"
        ).bind(room_id).all()
    ).results
    servers = [env.config.server_name]
    for row in rows:
        server = server_name_of(row["state_key"])
        if server is not None and server not in servers:
            servers.append(server)
    return servers


async def query_directory(request: Request, env: Any) -> dict[str, Any]:
    await require_server(request, env)
    alias = request.query_params.get("room_alias")
    if not alias:
        raise missing_param("room_alias is required")
    if not alias.startswith("#") or server_name_of(alias) != env.config.server_name:
        raise invalid_param("Room alias is not on this server")
    room_id = await env.DB.prepare("SELECT room_id FROM room_aliases WHERE alias = ?").bind(
        alias
    ).first("room_id")
    if room_id is None:
        raise MatrixError(404, Codes.NOT_FOUND, "Room alias not found")
    return {"room_id": room_id, "servers": await room_servers(env, room_id)}


routes: list[Route] = [
    route("/_matrix/federation/v1/query/profile", query_profile, ["GET"]),
    route("/_matrix/federation/v1/query/directory", query_directory, ["GET"]),
]
