"""``GET``/``POST /_matrix/federation/v1/publicRooms``.

Spec: server-server API "Published Room Directory": this server's published rooms, the same
list and pagination as the client ``/publicRooms`` (``workers.client.directory``), for a
signed request. ``POST`` adds ``filter.generic_search_term``. Rooms of third-party networks
exist only through application services, which this server has none of: a request for a
``third_party_instance_id`` (without ``include_all_networks``) finds no rooms.
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from workers.client.directory import _limit, _public_rooms
from workers.errors import bad_json
from workers.federation.auth import require_server
from workers.federation.server.common import FEDERATION_V1
from workers.routing import read_json_object, route

NO_ROOMS: dict[str, Any] = {"chunk": [], "total_room_count_estimate": 0}


def _only_a_network(include_all: Any, instance_id: Any) -> bool:
    return bool(instance_id) and include_all not in (True, "true")


async def get_public_rooms(request: Request, env: Any) -> dict[str, Any]:
    await require_server(request, env)
    params = request.query_params
    if _only_a_network(params.get("include_all_networks"), params.get("third_party_instance_id")):
        return dict(NO_ROOMS)
    return await _public_rooms(env, _limit(params.get("limit")), params.get("since"), None)


async def post_public_rooms(request: Request, env: Any) -> dict[str, Any]:
    await require_server(request, env)
    body = await read_json_object(request, allow_empty=True)
    search = body.get("filter") or {}
    if not isinstance(search, dict):
        raise bad_json("filter must be an object")
    term = search.get("generic_search_term")
    if term is not None and not isinstance(term, str):
        raise bad_json("generic_search_term must be a string")
    since = body.get("since")
    if since is not None and not isinstance(since, str):
        raise bad_json("since must be a string")
    if _only_a_network(body.get("include_all_networks"), body.get("third_party_instance_id")):
        return dict(NO_ROOMS)
    return await _public_rooms(env, _limit(body.get("limit")), since, term)


routes: list[Route] = [
    route(FEDERATION_V1 + "/publicRooms", get_public_rooms, ["GET"]),
    route(FEDERATION_V1 + "/publicRooms", post_public_rooms, ["POST"]),
]
