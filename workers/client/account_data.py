"""Account data and room tags.

- ``GET/PUT /user/{userId}/account_data/{type}`` and
  ``GET/PUT /user/{userId}/rooms/{roomId}/account_data/{type}`` (spec: "Client Config",
  account-data.yaml). Only the owner may read or write; ``m.fully_read`` and
  ``m.push_rules`` are managed by the server, so PUT refuses them with 405 ``M_BAD_JSON``.
- ``GET /user/{userId}/rooms/{roomId}/tags`` and ``PUT/DELETE .../tags/{tag}`` (spec:
  "Room Tagging", tags.yaml). Tags live in the room's ``m.tag`` account data
  ``{"tags": {name: {order?}}}``; a tag name is at most 255 bytes.

Every write takes a new position of the ``account_data`` stream (``d1.account_data``).
"""

from __future__ import annotations

import json
import sqlite3
from typing import Any

from starlette.requests import Request

from d1 import account_data as account_data_db
from workers.auth import Requester, require_user
from workers.client import client_routes
from workers.errors import Codes, MatrixError
from workers.routing import check_stored_size, read_json_object

SERVER_MANAGED_TYPES = frozenset({"m.fully_read", "m.push_rules"})
TAG_TYPE = "m.tag"
MAX_TAG_BYTES = 255


async def _owner(request: Request, env: Any) -> Requester:
    requester = await require_user(request, env)
    if requester.user_id != request.path_params["user_id"]:
        raise MatrixError(403, Codes.FORBIDDEN, "Cannot access another user's account data")
    return requester


def _room_id(request: Request) -> str:
    room_id: str = request.path_params["room_id"]
    if not room_id.startswith("!") or len(room_id) < 2:
        raise MatrixError(400, Codes.INVALID_PARAM, f"{room_id!r} is not a valid room ID")
    return room_id


async def _get(env: Any, user_id: str, room_id: str, type: str) -> dict[str, Any]:
    content = await account_data_db.get(env.DB, user_id, room_id, type)
    if content is None:
        raise MatrixError(404, Codes.NOT_FOUND, f"No account data of type {type!r}")
    return content


async def _put(request: Request, env: Any, room_id: str) -> dict[str, Any]:
    requester = await _owner(request, env)
    type = request.path_params["type"]
    if type in SERVER_MANAGED_TYPES:
        raise MatrixError(405, Codes.BAD_JSON, f"Cannot set {type} through this API.")
    content = await read_json_object(request)
    check_stored_size(content, "Account data")
    await account_data_db.put(env.DB, requester.user_id, room_id, type, content)
    env.NOTIFIER.notify([requester.user_id])  # wake the user's waiting /sync
    return {}


async def get_global(request: Request, env: Any) -> dict[str, Any]:
    requester = await _owner(request, env)
    return await _get(env, requester.user_id, account_data_db.GLOBAL, request.path_params["type"])


async def put_global(request: Request, env: Any) -> dict[str, Any]:
    return await _put(request, env, account_data_db.GLOBAL)


async def get_room(request: Request, env: Any) -> dict[str, Any]:
    requester = await _owner(request, env)
    room_id = _room_id(request)
    return await _get(env, requester.user_id, room_id, request.path_params["type"])


async def put_room(request: Request, env: Any) -> dict[str, Any]:
    room_id = _room_id(request)
    return await _put(request, env, room_id)


# --- tags ----------------------------------------------------------------------------------


async def get_tags(request: Request, env: Any) -> dict[str, Any]:
    requester = await _owner(request, env)
    content = await account_data_db.get(env.DB, requester.user_id, _room_id(request), TAG_TYPE)
    tags = (content or {}).get("tags")
    return {"tags": tags if isinstance(tags, dict) else {}}


def _tag_name(request: Request) -> str:
    tag: str = request.path_params["tag"]
    if not tag or len(tag.encode("utf-8")) > MAX_TAG_BYTES:
        raise MatrixError(400, Codes.INVALID_PARAM, "Tag names must be 1 to 255 bytes")
    return tag


async def _change_tags(
    env: Any, user_id: str, room_id: str, tag: str, info: dict[str, Any] | None
) -> None:
    """Add (``info`` given) or remove one tag, as one read-then-write transaction that also
    takes the next account_data stream position."""

    def change(conn: sqlite3.Connection) -> None:
        row = conn.execute(
            "SELECT content FROM account_data WHERE user_id = ? AND room_id = ? AND type = ?",
            (user_id, room_id, TAG_TYPE),
        ).fetchone()
        content = json.loads(row[0]) if row else {}
        tags = content.get("tags") if isinstance(content.get("tags"), dict) else {}
        if info is None:
            if tag not in tags:
                return
            tags.pop(tag)
        else:
            tags[tag] = info
        content["tags"] = tags
        for stmt in account_data_db.put_statements(env.DB, user_id, room_id, TAG_TYPE, content):
            conn.execute(stmt.sql, stmt.params)

    await env.DB.run_in_transaction(change)
    env.NOTIFIER.notify([user_id])  # wake the user's waiting /sync


async def put_tag(request: Request, env: Any) -> dict[str, Any]:
    requester = await _owner(request, env)
    room_id = _room_id(request)
    tag = _tag_name(request)
    info = await read_json_object(request, allow_empty=True)
    order = info.get("order")
    if order is not None and (not isinstance(order, (int, float)) or isinstance(order, bool)):
        raise MatrixError(400, Codes.BAD_JSON, "order must be a number")
    check_stored_size(info, "Tag")
    await _change_tags(env, requester.user_id, room_id, tag, info)
    return {}


async def delete_tag(request: Request, env: Any) -> dict[str, Any]:
    requester = await _owner(request, env)
    await _change_tags(env, requester.user_id, _room_id(request), _tag_name(request), None)
    return {}


routes = [
    *client_routes("/user/{user_id}/account_data/{type}", get_global, ["GET"]),
    *client_routes("/user/{user_id}/account_data/{type}", put_global, ["PUT"]),
    *client_routes("/user/{user_id}/rooms/{room_id}/account_data/{type}", get_room, ["GET"]),
    *client_routes("/user/{user_id}/rooms/{room_id}/account_data/{type}", put_room, ["PUT"]),
    *client_routes("/user/{user_id}/rooms/{room_id}/tags", get_tags, ["GET"]),
    *client_routes("/user/{user_id}/rooms/{room_id}/tags/{tag}", put_tag, ["PUT"]),
    *client_routes("/user/{user_id}/rooms/{room_id}/tags/{tag}", delete_tag, ["DELETE"]),
]
