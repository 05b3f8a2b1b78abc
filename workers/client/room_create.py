"""``POST /createRoom``.

Spec: client-server API "Creation" (``POST /_matrix/client/v3/createRoom``): the server
sends, in order, ``m.room.create``, the creator's join, ``m.room.power_levels`` (with
``power_level_content_override`` applied), ``m.room.canonical_alias`` for
``room_alias_name``, the preset's join rules, history visibility and guest access, then
``initial_state``, ``m.room.name``, ``m.room.topic``, and the invites. Room version 12
(MSC4289): creators are not listed in ``users``; ``trusted_private_chat`` invitees become
``additional_creators``; the tombstone level is set above ``state_default`` (150).
"""

from __future__ import annotations

import os
import secrets
import time
from typing import Any

from starlette.requests import Request
from starlette.routing import Route

from d1.accounts import get_profile
from durable.events import build_event
from durable.errors import InvalidEvent
from durable.events.event import Event
from durable.events.identifiers import is_valid_user_id
from durable.room_versions import RoomVersion, UnsupportedRoomVersion, get_room_version
from workers.auth import require_user
from workers.errors import Codes, MatrixError, bad_json, invalid_param
from workers.federation.outbound import invite_remote
from workers.room_access import room_stub
from workers.routing import client_routes, read_json_object

CREATE_ATTEMPTS = 8

PRESETS = {
    "private_chat": {"join_rule": "invite", "history_visibility": "shared", "guest_access": "can_join"},
    "trusted_private_chat": {"join_rule": "invite", "history_visibility": "shared", "guest_access": "can_join"},
    "public_chat": {"join_rule": "public", "history_visibility": "shared", "guest_access": None},
}


def default_power_levels(
    room_version: RoomVersion, creator: str, preset: str, invitees: list[str]
) -> dict[str, Any]:
    """Power levels as Synapse sets them for a new room."""
    users: dict[str, int] = {}
    if not room_version.privileged_creators:
        users[creator] = 100
        if preset == "trusted_private_chat":
            for invitee in invitees:
                users[invitee] = 100
    events = {
        "m.room.name": 50,
        "m.room.power_levels": 100,
        "m.room.history_visibility": 100,
        "m.room.canonical_alias": 50,
        "m.room.avatar": 50,
        "m.room.tombstone": 150 if room_version.privileged_creators else 100,
        "m.room.server_acl": 100,
        "m.room.encryption": 100,
    }
    return {
        "users": users,
        "users_default": 0,
        "events": events,
        "events_default": 0,
        "state_default": 50,
        "ban": 50,
        "kick": 50,
        "redact": 50,
        "invite": 50 if preset == "public_chat" else 0,
        "historical": 100,
        "notifications": {"room": 50},
    }


def _state_template(sender: str, event_type: str, content: dict[str, Any], state_key: str = "") -> dict[str, Any]:
    return {"sender": sender, "type": event_type, "state_key": state_key, "content": content}


def _create_event(
    env: Any, room_version: RoomVersion, creator: str, content: dict[str, Any], attempt: int
) -> Event:
    """The signed ``m.room.create`` event; ``attempt`` > 0 moves its timestamp a few random
    milliseconds ahead so that its hash (the v12 room ID) differs from a colliding one."""
    room_id = None
    if not room_version.room_id_is_create_event_hash:
        room_id = f"!{os.urandom(9).hex()}:{env.config.server_name}"
    origin_server_ts = int(time.time() * 1000)
    if attempt:
        origin_server_ts += 1 + secrets.randbelow(10 * attempt)
    return build_event(
        room_version,
        room_id=room_id,
        sender=creator,
        type="m.room.create",
        state_key="",
        content=content,
        prev_event_ids=[],
        auth_event_ids=[],
        depth=1,
        origin_server_ts=origin_server_ts,
        server_name=env.config.server_name,
        signing_key=env.signing_key,
        event_id_localpart=os.urandom(12).hex() if room_version.event_id_in_event else None,
        get_event_hashes=(lambda _: {}) if room_version.event_id_in_event else None,
    )


async def member_content(env: Any, user_id: str, membership: str) -> dict[str, Any]:
    """Member event content with the user's profile, for a local user."""
    content: dict[str, Any] = {"membership": membership}
    profile = await get_profile(env.DB, user_id)
    if profile:
        if profile.get("displayname") is not None:
            content["displayname"] = profile["displayname"]
        if profile.get("avatar_url") is not None:
            content["avatar_url"] = profile["avatar_url"]
    return content


async def create_room(request: Request, env: Any) -> dict[str, Any]:
    requester = await require_user(request, env)
    body = await read_json_object(request, allow_empty=True)
    return {"room_id": await create_room_for(env, requester.user_id, body)}


async def create_room_for(env: Any, creator: str, body: dict[str, Any]) -> str:
    """Create a room as ``creator`` from a ``/createRoom`` request body; return its ID."""
    server_name = env.config.server_name

    requested_version = body.get("room_version", env.config.default_room_version)
    if not isinstance(requested_version, str):
        raise bad_json("room_version must be a string")
    try:
        room_version = get_room_version(requested_version)
    except UnsupportedRoomVersion as exc:
        raise MatrixError(400, Codes.UNSUPPORTED_ROOM_VERSION, str(exc)) from exc

    visibility = body.get("visibility", "private")
    if visibility not in ("public", "private"):
        raise invalid_param("visibility must be 'public' or 'private'")
    preset = body.get("preset") or ("public_chat" if visibility == "public" else "private_chat")
    if not isinstance(preset, str) or preset not in PRESETS:
        raise invalid_param(f"Unknown preset {preset!r}")

    invitees = body.get("invite", [])
    if not isinstance(invitees, list) or not all(isinstance(u, str) and is_valid_user_id(u) for u in invitees):
        raise invalid_param("invite must be a list of user IDs")
    remote_invitees = [u for u in invitees if not u.endswith(":" + server_name)]
    if body.get("invite_3pid"):
        raise MatrixError(400, Codes.UNRECOGNIZED, "Third-party invites are not supported")
    is_direct = bool(body.get("is_direct", False))

    alias = None
    if "room_alias_name" in body:
        name = body["room_alias_name"]
        if not isinstance(name, str) or not name or any(c in name for c in ":# \t\n"):
            raise invalid_param("room_alias_name must be a non-empty localpart without ':' or '#'")
        alias = f"#{name}:{server_name}"
        if len(alias.encode()) > 255:
            raise invalid_param("room alias too long")
        if await env.DB.prepare("SELECT 1 FROM room_aliases WHERE alias = ?").bind(alias).first():
            raise MatrixError(400, Codes.ROOM_IN_USE, "Room alias already taken")

    for key in ("name", "topic"):
        if key in body and not isinstance(body[key], str):
            raise bad_json(f"{key} must be a string")
    creation_content = body.get("creation_content", {})
    initial_state = body.get("initial_state", [])
    override = body.get("power_level_content_override", {})
    if not isinstance(creation_content, dict) or not isinstance(override, dict):
        raise bad_json("creation_content and power_level_content_override must be objects")
    if not isinstance(initial_state, list) or not all(
        isinstance(e, dict) and isinstance(e.get("type"), str) and isinstance(e.get("content"), dict)
        and isinstance(e.get("state_key", ""), str)
        for e in initial_state
    ):
        raise bad_json("initial_state must be a list of {type, state_key, content}")

    # 1. m.room.create, built here because in room version 12 it defines the room ID.
    create_content = {k: v for k, v in creation_content.items() if k != "room_version"}
    create_content["room_version"] = room_version.identifier
    if not room_version.implicit_room_creator:
        create_content["creator"] = creator
    if room_version.privileged_creators and preset == "trusted_private_chat" and invitees:
        additional = create_content.get("additional_creators", [])
        if not isinstance(additional, list):
            raise bad_json("additional_creators must be a list of user IDs")
        create_content["additional_creators"] = list(dict.fromkeys([*additional, *invitees]))
    # 2.. everything after the create event, as templates the room actor builds and
    # authorises in order.
    templates: list[dict[str, Any]] = []
    templates.append(
        _state_template(creator, "m.room.member", await member_content(env, creator, "join"), creator)
    )
    power_levels = default_power_levels(room_version, creator, preset, invitees)
    power_levels.update(override)
    templates.append(_state_template(creator, "m.room.power_levels", power_levels))
    if alias is not None:
        templates.append(_state_template(creator, "m.room.canonical_alias", {"alias": alias}))
    preset_state = PRESETS[preset]
    initial_keys = {(e["type"], e.get("state_key", "")) for e in initial_state}
    if ("m.room.join_rules", "") not in initial_keys:
        templates.append(_state_template(creator, "m.room.join_rules", {"join_rule": preset_state["join_rule"]}))
    if ("m.room.history_visibility", "") not in initial_keys:
        templates.append(_state_template(
            creator, "m.room.history_visibility", {"history_visibility": preset_state["history_visibility"]}
        ))
    if preset_state["guest_access"] and ("m.room.guest_access", "") not in initial_keys:
        templates.append(_state_template(creator, "m.room.guest_access", {"guest_access": preset_state["guest_access"]}))
    for event in initial_state:
        templates.append(_state_template(creator, event["type"], event["content"], event.get("state_key", "")))
    if "name" in body:
        templates.append(_state_template(creator, "m.room.name", {"name": body["name"]}))
    if "topic" in body:
        templates.append(_state_template(creator, "m.room.topic", {"topic": body["topic"]}))
    for invitee in invitees:
        if invitee in remote_invitees:
            continue  # invited over federation once the room exists
        content = await member_content(env, invitee, "invite")
        if is_direct:
            content["is_direct"] = True
        templates.append(_state_template(creator, "m.room.member", content, invitee))

    # 1. m.room.create, built last because in room version 12 it defines the room ID: two
    # requests with the same content in the same millisecond would hash to the same room,
    # so a collision is retried with a perturbed origin_server_ts (the actor refuses the
    # second create of a room with M_ROOM_IN_USE).
    for attempt in range(CREATE_ATTEMPTS):
        try:
            create = _create_event(env, room_version, creator, create_content, attempt)
        except InvalidEvent as exc:
            raise bad_json(f"Invalid creation_content: {exc.reason}") from exc
        room_id = create.room_id
        try:
            await room_stub(env, room_id).create_room(
                room_version.identifier, dict(create.pdu), templates, visibility == "public"
            )
            break
        except MatrixError as exc:
            if exc.errcode != Codes.ROOM_IN_USE.value or attempt == CREATE_ATTEMPTS - 1:
                raise
    if alias is not None:
        await env.DB.prepare(
            "INSERT INTO room_aliases (alias, room_id, creator, created_ts) VALUES (?,?,?,?)"
        ).bind(alias, room_id, creator, int(time.time() * 1000)).run()
    for invitee in remote_invitees:
        await invite_remote(env, creator, room_id, invitee, {"is_direct": True} if is_direct else {})
    return room_id


routes: list[Route] = [*client_routes("/createRoom", create_room, ["POST"])]
