"""Room aliases and the room directory.

Spec: client-server API "Room aliases" (``/directory/room/{roomAlias}``,
``/rooms/{roomId}/aliases``) and "Listing rooms" (``/directory/list/room/{roomId}``,
``/publicRooms``).
"""

from __future__ import annotations

import json
import time
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from d1.state import membership_of
from durable.events.identifiers import is_valid_server_name
from workers.auth import require_user
from workers.errors import Codes, MatrixError, bad_json, invalid_param
from workers.federation.outbound import resolve_remote_alias
from workers.room_access import require_room, room_stub
from workers.routing import client_routes, read_json_object


def is_valid_alias(alias: str) -> bool:
    """Spec appendices, "Room Aliases": ``#room_alias:server_name``, at most 255 bytes, with
    no NUL (nor ``:``) in the localpart and a valid server name."""
    _, sep, server = alias[1:].partition(":")
    return (
        alias.startswith("#") and bool(sep) and "\x00" not in alias
        and len(alias.encode("utf-8", "surrogatepass")) <= 255 and is_valid_server_name(server)
    )


def _check_alias(env: Any, alias: str) -> None:
    if not is_valid_alias(alias):
        raise invalid_param(f"{alias!r} is not a room alias")


async def get_alias(request: Request, env: Any) -> dict[str, Any]:
    """A local alias from ``room_aliases``; another server's alias through its
    ``query/directory`` (server-server "Querying for information")."""
    alias = request.path_params["roomAlias"]
    _check_alias(env, alias)
    if alias.split(":", 1)[1] != env.config.server_name:
        room_id, servers = await resolve_remote_alias(env, alias)
        return {"room_id": room_id, "servers": servers}
    room_id = await env.DB.prepare("SELECT room_id FROM room_aliases WHERE alias = ?").bind(alias).first(
        "room_id"
    )
    if room_id is None:
        raise MatrixError(404, Codes.NOT_FOUND, f"Room alias {alias} not found")
    return {"room_id": room_id, "servers": [env.config.server_name]}


async def put_alias(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    alias = request.path_params["roomAlias"]
    _check_alias(env, alias)
    if alias.split(":", 1)[1] != env.config.server_name:
        raise invalid_param("Room aliases must be on this server")
    body = await read_json_object(request)
    room_id = body.get("room_id")
    if not isinstance(room_id, str):
        raise bad_json("room_id is required")
    await require_room(env, room_id)
    if await membership_of(env.DB, room_id, requester.user_id) != "join":
        raise MatrixError(403, Codes.FORBIDDEN, "You are not in this room")
    result = await env.DB.prepare(
        "INSERT OR IGNORE INTO room_aliases (alias, room_id, creator, created_ts) VALUES (?,?,?,?)"
    ).bind(alias, room_id, requester.user_id, int(time.time() * 1000)).run()
    if result.meta.get("changes", 0) == 0:
        raise MatrixError(409, Codes.UNKNOWN, f"Room alias {alias} already exists")
    return {}


async def delete_alias(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    alias = request.path_params["roomAlias"]
    _check_alias(env, alias)
    row = await env.DB.prepare("SELECT room_id, creator FROM room_aliases WHERE alias = ?").bind(alias).first()
    if row is None:
        raise MatrixError(404, Codes.NOT_FOUND, f"Room alias {alias} not found")
    if row["creator"] != requester.user_id and not await room_stub(env, row["room_id"]).user_can_send_state(
        requester.user_id, "m.room.canonical_alias"
    ):
        raise MatrixError(403, Codes.FORBIDDEN, "You may not delete this alias")
    await env.DB.prepare("DELETE FROM room_aliases WHERE alias = ?").bind(alias).run()
    return {}


async def room_aliases(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    room_id = request.path_params["roomId"]
    await require_room(env, room_id)
    if await membership_of(env.DB, room_id, requester.user_id) != "join" and not await _world_readable(env, room_id):
        raise MatrixError(403, Codes.FORBIDDEN, "You are not in this room")
    rows = (await env.DB.prepare("SELECT alias FROM room_aliases WHERE room_id = ? ORDER BY alias").bind(
        room_id
    ).all()).results
    return {"aliases": [r["alias"] for r in rows]}


async def _state_content(env: Any, room_id: str, event_type: str) -> dict[str, Any]:
    row = await env.DB.prepare(
        "SELECT e.json FROM current_state c JOIN events e ON e.event_id = c.event_id"
        " WHERE c.room_id = ? AND c.type = ? AND c.state_key = ''"
    ).bind(room_id, event_type).first()
    if row is None:
        return {}
    content = json.loads(row["json"]).get("content", {})
    return content if isinstance(content, dict) else {}


async def _world_readable(env: Any, room_id: str) -> bool:
    content = await _state_content(env, room_id, "m.room.history_visibility")
    return content.get("history_visibility") == "world_readable"


async def get_visibility(request: Request, env: Any) -> dict[str, Any]:
    room_id = request.path_params["roomId"]
    await require_room(env, room_id)
    public = await env.DB.prepare("SELECT is_public FROM rooms WHERE room_id = ?").bind(room_id).first("is_public")
    return {"visibility": "public" if public else "private"}


async def put_visibility(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    room_id = request.path_params["roomId"]
    await require_room(env, room_id)
    body = await read_json_object(request)
    visibility = body.get("visibility", "public")
    if visibility not in ("public", "private"):
        raise invalid_param("visibility must be 'public' or 'private'")
    stub = room_stub(env, room_id)
    if not await stub.user_can_send_state(requester.user_id, "m.room.canonical_alias"):
        raise MatrixError(403, Codes.FORBIDDEN, "You may not change this room's visibility")
    await stub.set_published(visibility == "public")
    return {}


async def public_room_entry(env: Any, room_id: str) -> dict[str, Any]:
    """One ``PublishedRoomsChunk`` entry, read from the room's current state."""
    entry: dict[str, Any] = {"room_id": room_id}
    name = (await _state_content(env, room_id, "m.room.name")).get("name")
    topic = (await _state_content(env, room_id, "m.room.topic")).get("topic")
    alias = (await _state_content(env, room_id, "m.room.canonical_alias")).get("alias")
    avatar = (await _state_content(env, room_id, "m.room.avatar")).get("url")
    join_rule = (await _state_content(env, room_id, "m.room.join_rules")).get("join_rule", "invite")
    history = (await _state_content(env, room_id, "m.room.history_visibility")).get("history_visibility")
    guest = (await _state_content(env, room_id, "m.room.guest_access")).get("guest_access")
    room_type = (await _state_content(env, room_id, "m.room.create")).get("type")
    for key, value in (("name", name), ("topic", topic), ("canonical_alias", alias), ("avatar_url", avatar),
                       ("room_type", room_type)):
        if isinstance(value, str):
            entry[key] = value
    entry["num_joined_members"] = await env.DB.prepare(
        "SELECT count(*) AS n FROM current_state WHERE room_id = ? AND type = 'm.room.member'"
        " AND membership = 'join'"
    ).bind(room_id).first("n")
    entry["world_readable"] = history == "world_readable"
    entry["guest_can_join"] = guest == "can_join"
    entry["join_rule"] = join_rule if isinstance(join_rule, str) else "invite"
    return entry


async def _public_rooms(env: Any, limit: int | None, since: str | None, term: str | None) -> dict[str, Any]:
    rows = (await env.DB.prepare("SELECT room_id FROM rooms WHERE is_public = 1 ORDER BY room_id").all()).results
    entries = [await public_room_entry(env, r["room_id"]) for r in rows]
    if term:
        needle = term.lower()
        entries = [
            e for e in entries
            if any(needle in str(e.get(k, "")).lower() for k in ("name", "topic", "canonical_alias", "room_id"))
        ]
    entries.sort(key=lambda e: (-e["num_joined_members"], e["room_id"]))
    start = 0
    if since:
        token = since.removeprefix("p")
        if not token.isascii() or not token.isdigit():
            raise invalid_param("Invalid pagination token")
        start = int(token)
    end = len(entries) if limit is None else start + limit
    result: dict[str, Any] = {"chunk": entries[start:end], "total_room_count_estimate": len(entries)}
    if end < len(entries):
        result["next_batch"] = f"p{end}"
    if start > 0:
        result["prev_batch"] = f"p{max(0, start - (limit or start))}"
    return result


def _limit(value: Any) -> int | None:
    """``limit`` from a query string or a JSON body: a non-negative integer (or absent)."""
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, (int, str)):
        raise invalid_param("limit must be an integer")
    try:
        limit = int(value)
    except ValueError:
        raise invalid_param("limit must be an integer") from None
    if limit < 0:
        raise invalid_param("limit must not be negative")
    return limit


async def get_public_rooms(request: Request, env: Any) -> dict[str, Any]:
    server = request.query_params.get("server")
    if server and server != env.config.server_name:
        raise MatrixError(400, Codes.UNRECOGNIZED, "Listing other servers' rooms needs federation")
    return await _public_rooms(env, _limit(request.query_params.get("limit")), request.query_params.get("since"), None)


async def post_public_rooms(request: Request, env: Any) -> dict[str, Any]:
    await require_user(request, env)
    server = request.query_params.get("server")
    if server and server != env.config.server_name:
        raise MatrixError(400, Codes.UNRECOGNIZED, "Listing other servers' rooms needs federation")
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
    return await _public_rooms(env, _limit(body.get("limit")), since, term)


routes: list[Route] = [
    *client_routes("/directory/room/{roomAlias}", get_alias, ["GET"]),
    *client_routes("/directory/room/{roomAlias}", put_alias, ["PUT"]),
    *client_routes("/directory/room/{roomAlias}", delete_alias, ["DELETE"]),
    *client_routes("/rooms/{roomId}/aliases", room_aliases, ["GET"]),
    *client_routes("/directory/list/room/{roomId}", get_visibility, ["GET"]),
    *client_routes("/directory/list/room/{roomId}", put_visibility, ["PUT"]),
    *client_routes("/publicRooms", get_public_rooms, ["GET"]),
    *client_routes("/publicRooms", post_public_rooms, ["POST"]),
]
