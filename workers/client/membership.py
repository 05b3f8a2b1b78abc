"""Membership endpoints: join, invite, leave, forget, kick, ban, unban, knock.

Spec: client-server API "Room membership". Each change is an ``m.room.member`` event that the
room's actor authorises against the room's auth rules (power levels for kick, ban and invite;
join rules for join and knock). A join to a room that replaces one the user is in carries
their tags, room push rules and ``m.direct`` entries over (``upgrade_user_state``).
"""

from __future__ import annotations

import json
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from d1.events import room_version_of
from d1.state import membership_of
from workers.federation.outbound import invite_remote, join_remote, knock_remote, leave_remote, resolve_remote_alias
from workers.federation.query import room_servers
from workers.federation.server.common import server_in_room
from durable.events.identifiers import is_valid_user_id
from workers.auth import require_user
from workers.client import upgrade_user_state
from workers.client.directory import is_valid_alias
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


def _via(request: Request) -> list[str]:
    """Servers to go through, from ``via`` (spec v1.12) and the older ``server_name``."""
    return [*request.query_params.getlist("via"), *request.query_params.getlist("server_name")]


async def _target_room(env: Any, room_id_or_alias: str) -> tuple[str, list[str]]:
    """The room ID and servers to try, resolving local and remote aliases."""
    if room_id_or_alias.startswith("#"):
        if not is_valid_alias(room_id_or_alias):
            raise MatrixError(400, Codes.INVALID_PARAM, f"{room_id_or_alias!r} is not a room alias")
        if room_id_or_alias.split(":", 1)[1] != env.config.server_name:
            return await resolve_remote_alias(env, room_id_or_alias)
    return await resolve_room_id_or_alias(env, room_id_or_alias), []


async def _we_are_in(env: Any, room_id: str) -> bool:
    """Whether this server has a joined member in the room (so it can act locally)."""
    return await room_version_of(env.DB, room_id) is not None and await server_in_room(
        env, room_id, env.config.server_name
    )


async def _join(request: Request, env: Any, room_id_or_alias: str) -> dict[str, Any]:
    requester = await require_user(request, env)
    body = await read_json_object(request, allow_empty=True)
    room_id, alias_servers = await _target_room(env, room_id_or_alias)
    known = await room_version_of(env.DB, room_id) is not None
    if await _we_are_in(env, room_id) or (known and await room_servers(env, room_id) == [env.config.server_name]):
        # We are in the room, or nobody elsewhere is: the join is ours to make.
        if await membership_of(env.DB, room_id, requester.user_id) == "join":
            return {"room_id": room_id}
        await room_stub(env, room_id).update_membership(
            requester.user_id, requester.user_id, "join", _reason(body),
            {k: v for k, v in (await member_content(env, requester.user_id, "join")).items() if k != "membership"},
        )
        await upgrade_user_state.on_join(env, requester.user_id, room_id)
        return {"room_id": room_id}
    servers = [*_via(request), *alias_servers, *await _invite_servers(env, room_id, requester.user_id)]
    if known:
        servers.extend(await room_servers(env, room_id))
    await join_remote(env, requester.user_id, room_id, servers, _reason(body))
    await upgrade_user_state.on_join(env, requester.user_id, room_id)
    return {"room_id": room_id}


async def _invite_servers(env: Any, room_id: str, user_id: str) -> list[str]:
    """Servers in a room this server is not in, from the user's invite or knock (outliers):
    the inviter's, then those of the senders of the stripped state the room's server gave
    (a knock's own sender is ours, and a v12 room ID names no server)."""
    rows = (
        await env.DB.prepare(
            "SELECT sender, local_unsigned FROM events WHERE room_id = ? AND type = 'm.room.member'"
            " AND state_key = ? AND membership IN ('invite', 'knock') ORDER BY stream_ordering DESC LIMIT 5"
        ).bind(room_id, user_id).all()
    ).results
    senders = [r["sender"] for r in rows]
    for row in rows:
        local = json.loads(row["local_unsigned"]) if row["local_unsigned"] else {}
        for key in ("invite_room_state", "knock_room_state"):
            stripped = local.get(key) if isinstance(local, dict) else None
            senders += [e["sender"] for e in stripped or [] if isinstance(e, dict) and isinstance(e.get("sender"), str)]
    return list(dict.fromkeys(s.split(":", 1)[1] for s in senders if ":" in s))


async def join_by_id_or_alias(request: Request, env: Any) -> dict[str, Any]:
    return await _join(request, env, request.path_params["roomIdOrAlias"])


async def join_room(request: Request, env: Any) -> dict[str, Any]:
    return await _join(request, env, request.path_params["roomId"])


async def knock(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    body = await read_json_object(request, allow_empty=True)
    room_id, alias_servers = await _target_room(env, request.path_params["roomIdOrAlias"])
    if not await _we_are_in(env, room_id):
        await knock_remote(env, requester.user_id, room_id, [*_via(request), *alias_servers], _reason(body))
        return {"room_id": room_id}
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
        content = {"reason": _reason(body)} if _reason(body) else {}
        await invite_remote(env, requester.user_id, room_id, target, content)
        return {}
    extra = {k: v for k, v in (await member_content(env, target, "invite")).items() if k != "membership"}
    await room_stub(env, room_id).update_membership(
        requester.user_id, target, "invite", _reason(body), extra
    )
    return {}


async def leave(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    room_id = request.path_params["roomId"]
    body = await read_json_object(request, allow_empty=True)
    if not await _we_are_in(env, room_id):
        # An invite or knock to a room hosted elsewhere: reject or withdraw it there.
        servers = await _invite_servers(env, room_id, requester.user_id)
        if not servers:
            raise MatrixError(403, Codes.FORBIDDEN, "You are not in this room")
        await leave_remote(env, requester.user_id, room_id, servers, _reason(body))
        return {}
    await require_room(env, room_id)
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
