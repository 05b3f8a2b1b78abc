"""Membership endpoints: join, invite, leave, forget, kick, ban, unban, knock.

Spec: client-server API "Room membership". Each change is an ``m.room.member`` event that the
room's actor authorises against the room's auth rules (power levels for kick, ban and invite;
join rules for join and knock).
"""

from __future__ import annotations

from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from d1.state import membership_of
from durable.events.identifiers import is_valid_user_id
from workers.auth import require_user
from workers.client.room_create import member_content
from workers.errors import Codes, MatrixError, bad_json
from workers.room_access import require_room, resolve_room_id_or_alias, room_stub
from workers.routing import client_routes, read_json_object


def _reason(body: dict[str, Any]) -> str | None:
    reason = body.get("reason")
    if reason is not None and not isinstance(reason, str):
        raise bad_json("reason must be a string")
    return reason


def _target(body: dict[str, Any]) -> str:
    user_id = body.get("user_id")
    if not isinstance(user_id, str):
        raise MatrixError(400, Codes.MISSING_PARAM, "Missing user_id")
    if not is_valid_user_id(user_id):
        raise MatrixError(400, Codes.INVALID_PARAM, f"{user_id!r} is not a valid user ID")
    return user_id


async def _join(request: Request, env: Any, room_id_or_alias: str) -> dict[str, Any]:
    requester = await require_user(request, env)
    body = await read_json_object(request, allow_empty=True)
    room_id = await resolve_room_id_or_alias(env, room_id_or_alias)
    try:
        await require_room(env, room_id)
    except MatrixError as exc:
        if exc.errcode == Codes.NOT_FOUND.value:
            raise MatrixError(
                404, Codes.NOT_FOUND,
                "This server does not know the room; joining rooms on other servers needs federation",
            ) from exc
        raise
    if await membership_of(env.DB, room_id, requester.user_id) == "join":
        return {"room_id": room_id}
    await room_stub(env, room_id).update_membership(
        requester.user_id, requester.user_id, "join", _reason(body),
        {k: v for k, v in (await member_content(env, requester.user_id, "join")).items() if k != "membership"},
    )
    return {"room_id": room_id}


async def join_by_id_or_alias(request: Request, env: Any) -> dict[str, Any]:
    return await _join(request, env, request.path_params["roomIdOrAlias"])


async def join_room(request: Request, env: Any) -> dict[str, Any]:
    return await _join(request, env, request.path_params["roomId"])


async def knock(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    body = await read_json_object(request, allow_empty=True)
    room_id = await resolve_room_id_or_alias(env, request.path_params["roomIdOrAlias"])
    await require_room(env, room_id)
    await room_stub(env, room_id).update_membership(
        requester.user_id, requester.user_id, "knock", _reason(body),
        {k: v for k, v in (await member_content(env, requester.user_id, "knock")).items() if k != "membership"},
    )
    return {"room_id": room_id}


async def invite(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    room_id = request.path_params["roomId"]
    await require_room(env, room_id)
    body = await read_json_object(request)
    if "user_id" not in body and "id_server" in body:
        raise MatrixError(400, Codes.UNRECOGNIZED, "Third-party invites are not supported")
    target = _target(body)
    if not target.endswith(":" + env.config.server_name):
        raise MatrixError(
            400, Codes.UNRECOGNIZED,
            "Inviting users on other servers needs federation, which this server does not offer yet",
        )
    extra = {k: v for k, v in (await member_content(env, target, "invite")).items() if k != "membership"}
    await room_stub(env, room_id).update_membership(
        requester.user_id, target, "invite", _reason(body), extra
    )
    return {}


async def leave(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    room_id = request.path_params["roomId"]
    await require_room(env, room_id)
    body = await read_json_object(request, allow_empty=True)
    await room_stub(env, room_id).update_membership(
        requester.user_id, requester.user_id, "leave", _reason(body)
    )
    return {}


async def forget(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    room_id = request.path_params["roomId"]
    await require_room(env, room_id)
    membership = await membership_of(env.DB, room_id, requester.user_id)
    if membership in ("join", "invite", "knock"):
        raise MatrixError(400, Codes.UNKNOWN, "You must leave the room before forgetting it")
    await env.DB.prepare(
        "INSERT OR IGNORE INTO room_forgotten (user_id, room_id) VALUES (?, ?)"
    ).bind(requester.user_id, room_id).run()
    return {}


def _moderation(membership: str):  # type: ignore[no-untyped-def]
    async def handler(request: Request, env: Any) -> dict[str, Any]:
        requester = await require_user(request, env)
        room_id = request.path_params["roomId"]
        await require_room(env, room_id)
        body = await read_json_object(request)
        target = _target(body)
        if membership == "unban" and await membership_of(env.DB, room_id, target) != "ban":
            raise MatrixError(403, Codes.FORBIDDEN, f"{target} is not banned")
        await room_stub(env, room_id).update_membership(
            requester.user_id, target, "leave" if membership in ("kick", "unban") else membership,
            _reason(body),
        )
        return {}

    handler.__name__ = membership
    return handler


routes: list[Route] = [
    *client_routes("/join/{roomIdOrAlias}", join_by_id_or_alias, ["POST"]),
    *client_routes("/rooms/{roomId}/join", join_room, ["POST"]),
    *client_routes("/knock/{roomIdOrAlias}", knock, ["POST"]),
    *client_routes("/rooms/{roomId}/invite", invite, ["POST"]),
    *client_routes("/rooms/{roomId}/leave", leave, ["POST"]),
    *client_routes("/rooms/{roomId}/forget", forget, ["POST"]),
    *client_routes("/rooms/{roomId}/kick", _moderation("kick"), ["POST"]),
    *client_routes("/rooms/{roomId}/ban", _moderation("ban"), ["POST"]),
    *client_routes("/rooms/{roomId}/unban", _moderation("unban"), ["POST"]),
]
