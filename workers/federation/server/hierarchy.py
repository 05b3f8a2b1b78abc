"""``GET /_matrix/federation/v1/hierarchy/{roomId}``.

Spec: server-server API "Spaces": the federation form of the client ``/hierarchy``, without
pagination: the requested room's summary (with ``children_state``), the summaries of its
children that the requesting server could peek or join (``children``), and the IDs of the
children hosted here that it could not (``inaccessible_children``); children this server
does not host are left out. ``suggested_only`` keeps only suggested children.

A server may see a room when it has a joined member in it, or the room is world-readable,
public or knockable, or restricted with the server joined to one of the allowed rooms. A
room that is unknown here, or that the requesting server may not see, is 404 ``M_NOT_FOUND``.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from workers.client.events_format import JsonDict
from workers.client.hierarchy import SpaceRoom, load_space_room, may_preview, room_summary
from workers.client.query_params import bool_param
from workers.errors import Codes, MatrixError
from workers.federation.auth import require_server
from workers.federation.server.common import FEDERATION_V1, server_in_room
from workers.routing import route


async def server_may_see(env: Any, room: SpaceRoom, origin: str) -> bool:
    if await server_in_room(env, room.room_id, origin):
        return True

    async def origin_joined(other_room: str) -> bool:
        return await server_in_room(env, other_room, origin)

    return await may_preview(room, origin_joined)


async def get_hierarchy(request: Request, env: Any) -> JsonDict:
    origin = await require_server(request, env)
    room_id = request.path_params["roomId"]
    suggested_only = bool(bool_param(request, "suggested_only"))
    room = await load_space_room(env, room_id)
    if room is None or not await server_may_see(env, room, origin):
        raise MatrixError(404, Codes.NOT_FOUND, "Room does not exist.")
    children: list[JsonDict] = []
    inaccessible: list[str] = []
    for child in room.children_for(suggested_only):
        child_room = await load_space_room(env, child["state_key"])
        if child_room is None:
            continue
        if await server_may_see(env, child_room, origin):
            children.append(await room_summary(env, child_room, suggested_only))
        else:
            inaccessible.append(child_room.room_id)
    return {
        "room": await room_summary(env, room, suggested_only),
        "children": children,
        "inaccessible_children": inaccessible,
    }


routes: list[Route] = [route(FEDERATION_V1 + "/hierarchy/{roomId}", get_hierarchy, ["GET"])]
